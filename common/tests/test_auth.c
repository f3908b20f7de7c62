/* test_auth.c: Ed25519 JWTs: what verifies and everything that must not
 * (bad signature, alg none and HS256, expired, nbf, wrong key, malformed
 * base64url or JSON, oversized), key rotation and reload, the role and
 * scope check, token files, and the HTTP server's 401/403 hook driven
 * through the HTTP client's bearer helper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "errors.h"
#include "fileio.h"
#include "http_client.h"
#include "http_server.h"
#include "testutil.h"

#define TENANT "0123456789abcdef0123456789abcdef"
#define TIMELINE "fedcba9876543210fedcba9876543210"
#define OTHER "11111111111111111111111111111111"

typedef struct fixture {
    char *dir;
    char keydir[4096]; /* public keys a and b */
    char priv_a[4096], pub_a[4096], priv_b[4096], pub_b[4096], priv_c[4096], pub_c[4096];
    lb_auth_signer *a, *b, *c;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_tempdir("auth");
    snprintf(f->keydir, sizeof(f->keydir), "%s/keys", f->dir);
    mkdir(f->keydir, 0755);
    snprintf(f->priv_a, sizeof(f->priv_a), "%s/a.key", f->dir);
    snprintf(f->pub_a, sizeof(f->pub_a), "%s/keys/a.pem", f->dir);
    snprintf(f->priv_b, sizeof(f->priv_b), "%s/b.key", f->dir);
    snprintf(f->pub_b, sizeof(f->pub_b), "%s/keys/b.pem", f->dir);
    snprintf(f->priv_c, sizeof(f->priv_c), "%s/c.key", f->dir);
    snprintf(f->pub_c, sizeof(f->pub_c), "%s/c.pem", f->dir);
    assert_int_equal(lb_auth_keygen(f->priv_a, f->pub_a), 0);
    assert_int_equal(lb_auth_keygen(f->priv_b, f->pub_b), 0);
    assert_int_equal(lb_auth_keygen(f->priv_c, f->pub_c), 0);
    assert_int_equal(lb_auth_keygen(f->priv_a, f->pub_a), LB_EEXIST);
    struct stat st;
    assert_int_equal(stat(f->priv_a, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(lb_auth_signer_load(f->priv_a, &f->a), 0);
    assert_int_equal(lb_auth_signer_load(f->priv_b, &f->b), 0);
    assert_int_equal(lb_auth_signer_load(f->priv_c, &f->c), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    lb_auth_signer_free(f->a);
    lb_auth_signer_free(f->b);
    lb_auth_signer_free(f->c);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

static char *
mint(lb_auth_signer *s, lb_auth_role role, const char *tenant, const char *timeline)
{
    lb_auth_claims c = {.role = role};
    snprintf(c.sub, sizeof(c.sub), "test");
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant ? tenant : "");
    snprintf(c.timeline, sizeof(c.timeline), "%s", timeline ? timeline : "");
    char *t = NULL;
    assert_int_equal(lb_auth_mint(s, &c, &t), 0);
    return t;
}

/* header.claims.sig from raw JSON texts and a signature taken from elsewhere. */
static char *
forge(const char *header, const char *claims, const char *sig)
{
    char *out = malloc(3 * LB_AUTH_TOKEN_MAX);
    size_t n;
    assert_int_equal(lb_auth_b64url_encode(header, strlen(header), out, LB_AUTH_TOKEN_MAX), 0);
    n = strlen(out);
    out[n++] = '.';
    assert_int_equal(lb_auth_b64url_encode(claims, strlen(claims), out + n, LB_AUTH_TOKEN_MAX), 0);
    n = strlen(out);
    snprintf(out + n, LB_AUTH_TOKEN_MAX, ".%s", sig);
    return out;
}

static lb_auth_keys *
keys_of(const char *path)
{
    lb_auth_keys *k = NULL;
    assert_int_equal(lb_auth_keys_load(path, &k), 0);
    return k;
}

static int
verify(lb_auth_keys *k, const char *token, const char **why)
{
    lb_auth_claims c;
    return lb_auth_verify(k, token, 0, &c, why);
}

static void
test_good_token_verifies_with_claims(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    lb_auth_claims in = {.role = LB_AUTH_COMPUTE, .iat = 1000, .exp = (int64_t)time(NULL) + 600};
    strcpy(in.sub, "compute-0");
    strcpy(in.tenant, TENANT);
    strcpy(in.timeline, TIMELINE);
    strcpy(in.endpoint, "127.0.0.1:55432");
    char *t = NULL;
    assert_int_equal(lb_auth_mint(f->a, &in, &t), 0);
    lb_auth_claims out;
    const char *why = "unset";
    assert_int_equal(lb_auth_verify(k, t, 0, &out, &why), 0);
    assert_null(why);
    assert_int_equal(out.role, LB_AUTH_COMPUTE);
    assert_string_equal(out.sub, "compute-0");
    assert_string_equal(out.tenant, TENANT);
    assert_string_equal(out.timeline, TIMELINE);
    assert_string_equal(out.endpoint, "127.0.0.1:55432");
    assert_int_equal(out.iat, 1000);
    assert_int_equal(out.exp, in.exp);
    free(t);
    lb_auth_keys_free(k);
}

static void
test_bad_signature_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    char *t = mint(f->a, LB_AUTH_PAGESERVER, NULL, NULL);
    const char *why;
    /* flip one signature character (not the last, whose low bits are padding) */
    char *sig = strrchr(t, '.') + 5;
    *sig = *sig == 'A' ? 'B' : 'A';
    assert_int_equal(verify(k, t, &why), LB_EAUTH);
    assert_string_equal(why, "bad signature");
    free(t);
    /* claims changed under a valid signature: role raised to management */
    char *good = mint(f->a, LB_AUTH_PAGESERVER, NULL, NULL);
    char *forged = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", "{\"role\":\"management\"}",
                         strrchr(good, '.') + 1);
    assert_int_equal(verify(k, forged, &why), LB_EAUTH);
    assert_string_equal(why, "bad signature");
    free(good);
    free(forged);
    lb_auth_keys_free(k);
}

static void
test_alg_none_and_hs256_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    const char *why;
    char *t = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"role\":\"management\"}", "");
    assert_int_equal(verify(k, t, &why), LB_EAUTH);
    assert_string_equal(why, "algorithm is not EdDSA");
    free(t);
    /* HS256 keyed with the public key's bytes: the classic confusion */
    t = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"role\":\"management\"}",
              "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtcw");
    assert_int_equal(verify(k, t, &why), LB_EAUTH);
    assert_string_equal(why, "algorithm is not EdDSA");
    free(t);
    /* alg missing, alg not a string, typ not JWT, crit present */
    const char *headers[] = {"{\"typ\":\"JWT\"}", "{\"alg\":1}",
                             "{\"alg\":\"EdDSA\",\"typ\":\"X\"}",
                             "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"]}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *good = mint(f->a, LB_AUTH_MANAGEMENT, NULL, NULL);
        t = forge(headers[i], "{}", strrchr(good, '.') + 1);
        assert_int_equal(verify(k, t, &why), LB_EAUTH);
        free(good);
        free(t);
    }
    lb_auth_keys_free(k);
}

static void
test_expired_and_not_yet_valid_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    int64_t now = (int64_t)time(NULL);
    lb_auth_claims c = {.role = LB_AUTH_MANAGEMENT, .exp = now - 3600};
    char *t;
    const char *why;
    lb_auth_claims out;
    assert_int_equal(lb_auth_mint(f->a, &c, &t), 0);
    assert_int_equal(lb_auth_verify(k, t, now, &out, &why), LB_EAUTH);
    assert_string_equal(why, "token expired");
    /* the same token verified at a time before its exp passes */
    assert_int_equal(lb_auth_verify(k, t, now - 7200, &out, &why), 0);
    free(t);
    c = (lb_auth_claims){.role = LB_AUTH_MANAGEMENT, .nbf = now + 3600};
    assert_int_equal(lb_auth_mint(f->a, &c, &t), 0);
    assert_int_equal(lb_auth_verify(k, t, now, &out, &why), LB_EAUTH);
    assert_string_equal(why, "token not valid yet");
    assert_int_equal(lb_auth_verify(k, t, now + 7200, &out, &why), 0);
    free(t);
    lb_auth_keys_free(k);
}

static void
test_wrong_key_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    char *t = mint(f->c, LB_AUTH_MANAGEMENT, NULL, NULL);
    const char *why;
    assert_int_equal(verify(k, t, &why), LB_EAUTH);
    assert_string_equal(why, "bad signature");
    free(t);
    lb_auth_keys_free(k);
    /* a private key is not a public key file */
    assert_int_equal(lb_auth_keys_load(f->priv_a, &k), LB_EPARSE);
    assert_null(k);
    /* nor is a public key a signer */
    lb_auth_signer *s = NULL;
    assert_int_equal(lb_auth_signer_load(f->pub_a, &s), LB_EPARSE);
    assert_int_equal(lb_auth_keys_load("/nonexistent/keys", &k), -ENOENT);
}

static void
test_rotation_with_two_keys_and_reload(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->keydir);
    assert_int_equal(lb_auth_keys_count(k), 2);
    char *ta = mint(f->a, LB_AUTH_MANAGEMENT, NULL, NULL);
    char *tb = mint(f->b, LB_AUTH_MANAGEMENT, NULL, NULL);
    char *tc = mint(f->c, LB_AUTH_MANAGEMENT, NULL, NULL);
    const char *why;
    assert_int_equal(verify(k, ta, &why), 0);
    assert_int_equal(verify(k, tb, &why), 0);
    assert_int_equal(verify(k, tc, &why), LB_EAUTH);
    /* retire key a: tokens signed with it stop verifying after a reload */
    char moved[8300];
    snprintf(moved, sizeof(moved), "%s/a.pem.retired", f->dir);
    assert_int_equal(rename(f->pub_a, moved), 0);
    assert_int_equal(verify(k, ta, &why), 0); /* not before the reload */
    assert_int_equal(lb_auth_keys_reload(k), 0);
    assert_int_equal(lb_auth_keys_count(k), 1);
    assert_int_equal(verify(k, ta, &why), LB_EAUTH);
    assert_int_equal(verify(k, tb, &why), 0);
    /* a reload that fails (a garbage .pem) keeps the keys that worked */
    char junk[8300];
    snprintf(junk, sizeof(junk), "%s/junk.pem", f->keydir);
    assert_int_equal(lb_write_file_atomic(junk, "not a key\n", 10), 0);
    assert_int_equal(lb_auth_keys_reload(k), LB_EPARSE);
    assert_int_equal(verify(k, tb, &why), 0);
    unlink(junk);
    /* an empty directory loads nothing */
    assert_int_equal(rename(f->pub_b, junk), 0);
    unlink(junk);
    assert_int_equal(lb_auth_keys_reload(k), LB_ENOTFOUND);
    assert_int_equal(verify(k, tb, &why), 0);
    lb_auth_keys *none = NULL;
    assert_int_equal(lb_auth_keys_load(f->keydir, &none), LB_ENOTFOUND);
    rename(moved, f->pub_a);
    free(ta);
    free(tb);
    free(tc);
    lb_auth_keys_free(k);
}

static void
test_malformed_tokens_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    char *good = mint(f->a, LB_AUTH_MANAGEMENT, NULL, NULL);
    const char *sig = strrchr(good, '.') + 1;
    const char *why;
    const char *bad[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        "eyJhbGciOiJFZERTQSJ9.e30=.AAAA", /* padding */
        "eyJhbGciOiJFZERTQSJ9.e30.A",     /* a lone character */
        "e30.e30.AAAA",                   /* header without alg */
        "bm90IGpzb24.e30.AAAA",           /* "not json" */
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",  /* short signature */
        "eyJhbGciOiJFZERTQSJ9.e30.AB",    /* trailing bits set */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify(k, bad[i], &why), LB_EAUTH);
    assert_int_equal(verify(k, NULL, &why), LB_EAUTH);
    /* claims that are not JSON, a JSON array, duplicate keys, unknown role,
     * bad ids: signatures are not checked before the header, but all these
     * are refused either by the signature or by the claims check */
    const char *claims[] = {"[1]", "{\"role\":\"management\",\"role\":\"compute\"}",
                            "{\"role\":\"root\"}", "{\"role\":\"compute\",\"tenant\":\"x\"}",
                            "{\"role\":\"management\",\"exp\":\"soon\"}"};
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        char *t = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", claims[i], sig);
        assert_int_equal(verify(k, t, &why), LB_EAUTH);
        free(t);
    }
    /* decoder edge cases */
    char out[16];
    size_t n;
    assert_int_equal(lb_auth_b64url_decode("YQ", 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(lb_auth_b64url_decode("YR", 2, out, sizeof(out), &n), LB_EPARSE);
    assert_int_equal(lb_auth_b64url_decode("Y+", 2, out, sizeof(out), &n), LB_EPARSE);
    assert_int_equal(lb_auth_b64url_decode("YWJjZA", 6, out, 2, &n), -ENOSPC);
    free(good);
    lb_auth_keys_free(k);
}

static void
test_oversized_token_refused(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->pub_a);
    size_t n = LB_AUTH_TOKEN_MAX * 4;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[100] = '.';
    big[200] = '.';
    big[n] = '\0';
    const char *why;
    assert_int_equal(verify(k, big, &why), LB_EAUTH);
    assert_string_equal(why, "token too long");
    free(big);
    /* a sub that makes the token too long cannot be minted either */
    lb_auth_claims c = {.role = LB_AUTH_MANAGEMENT};
    memset(c.endpoint, 'x', sizeof(c.endpoint) - 1);
    char *t = NULL;
    assert_int_equal(lb_auth_mint(f->a, &c, &t), 0); /* 255 bytes fit */
    assert_true(strlen(t) <= LB_AUTH_TOKEN_MAX);
    free(t);
    lb_auth_keys_free(k);
}

static void
test_allows_by_role_and_scope(void **state)
{
    (void)state;
    lb_auth_claims mgmt = {.role = LB_AUTH_MANAGEMENT};
    lb_auth_claims ps = {.role = LB_AUTH_PAGESERVER};
    lb_auth_claims ps_t = {.role = LB_AUTH_PAGESERVER};
    strcpy(ps_t.tenant, TENANT);
    lb_auth_claims cp = {.role = LB_AUTH_COMPUTE};
    strcpy(cp.tenant, TENANT);
    strcpy(cp.timeline, TIMELINE);
    assert_true(lb_auth_allows(&mgmt, LB_AUTH_COMPUTE, OTHER, OTHER));
    assert_true(lb_auth_allows(&mgmt, 0, NULL, NULL));
    assert_true(lb_auth_allows(&ps, LB_AUTH_PAGESERVER, OTHER, TIMELINE));
    assert_false(lb_auth_allows(&ps, LB_AUTH_COMPUTE, TENANT, TIMELINE));
    assert_true(lb_auth_allows(&ps_t, LB_AUTH_PAGESERVER, TENANT, OTHER));
    assert_false(lb_auth_allows(&ps_t, LB_AUTH_PAGESERVER, OTHER, OTHER));
    assert_false(lb_auth_allows(&ps_t, LB_AUTH_PAGESERVER, NULL, NULL));
    assert_true(lb_auth_allows(&cp, LB_AUTH_COMPUTE, TENANT, TIMELINE));
    assert_false(lb_auth_allows(&cp, LB_AUTH_COMPUTE, TENANT, OTHER));
    assert_false(lb_auth_allows(&cp, LB_AUTH_COMPUTE, OTHER, TIMELINE));
    assert_false(lb_auth_allows(&cp, LB_AUTH_COMPUTE, TENANT, NULL));
    assert_false(lb_auth_allows(&cp, LB_AUTH_PAGESERVER, TENANT, TIMELINE));
    assert_false(lb_auth_allows(NULL, LB_AUTH_ANY_ROLE, NULL, NULL));
    assert_string_equal(lb_auth_bearer("Bearer abc"), "abc");
    assert_string_equal(lb_auth_bearer("bearer  abc"), "abc");
    assert_null(lb_auth_bearer("Basic abc"));
    assert_null(lb_auth_bearer("Bearer "));
    assert_null(lb_auth_bearer(NULL));
}

static void
test_token_file_load_reload(void **state)
{
    fixture *f = *state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/token", f->dir);
    char *t1 = mint(f->a, LB_AUTH_SAFEKEEPER, NULL, NULL);
    char *t2 = mint(f->a, LB_AUTH_PAGESERVER, NULL, NULL);
    char text[LB_AUTH_TOKEN_MAX + 8];
    snprintf(text, sizeof(text), "  %s\n", t1);
    assert_int_equal(lb_write_file_atomic(path, text, strlen(text)), 0);
    lb_auth_token *tok;
    assert_int_equal(lb_auth_token_load(path, &tok), 0);
    char got[LB_AUTH_TOKEN_MAX + 1];
    assert_int_equal(lb_auth_token_get(tok, got, sizeof(got)), 0);
    assert_string_equal(got, t1);
    char line[LB_AUTH_HEADER_MAX];
    assert_int_equal(lb_auth_header_line(tok, line, sizeof(line)), 0);
    assert_true(strncmp(line, "Authorization: Bearer ", 22) == 0);
    assert_string_equal(line + 22, t1);
    assert_int_equal(lb_auth_token_get(tok, got, 8), -ENOSPC);
    /* reload picks the new token; a broken file keeps the old one */
    assert_int_equal(lb_write_file_atomic(path, t2, strlen(t2)), 0);
    assert_int_equal(lb_auth_token_reload(tok), 0);
    assert_int_equal(lb_auth_token_get(tok, got, sizeof(got)), 0);
    assert_string_equal(got, t2);
    assert_int_equal(lb_write_file_atomic(path, "not a token", 11), 0);
    assert_int_equal(lb_auth_token_reload(tok), LB_EPARSE);
    assert_int_equal(lb_auth_token_get(tok, got, sizeof(got)), 0);
    assert_string_equal(got, t2);
    lb_auth_token_free(tok);
    assert_int_equal(lb_auth_token_load(path, &tok), LB_EPARSE);
    assert_int_equal(lb_auth_header_line(NULL, line, sizeof(line)), 0);
    assert_string_equal(line, "");
    free(t1);
    free(t2);
}

/* ---- the HTTP server's hook ---- */

static int
h_ok(lb_http_request *req, void *arg)
{
    (void)arg;
    const lb_auth_claims *c = lb_http_claims(req);
    return lb_http_respond_text(req, 200, "%s", c ? lb_auth_role_name(c->role) : "none");
}

static long
call(lb_http_client *hc, const char *method, const char *url, lb_buf *hdrs)
{
    lb_http_call req = {.method = method, .url = url};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(hc, &req, &res), 0);
    long status = res.status;
    if (hdrs) {
        const char *w = lb_http_result_header(&res, "www-authenticate");
        lb_buf_reset(hdrs);
        if (w)
            lb_buf_printf(hdrs, "%s", w);
    }
    lb_http_result_free(&res);
    return status;
}

static void
test_http_routes_need_the_right_token(void **state)
{
    fixture *f = *state;
    lb_auth_keys *k = keys_of(f->keydir);
    lb_http_server *s;
    lb_http_server_config cfg = {.port = 0, .threads = 2};
    assert_int_equal(lb_http_server_new(&cfg, &s), 0);
    lb_http_access compute = {.roles = LB_AUTH_COMPUTE};
    assert_int_equal(lb_http_server_route_access(s, "POST",
                                                 "/v1/tenant/{tenant_id}/timeline/"
                                                 "{timeline_id}/vote",
                                                 h_ok, NULL, &compute),
                     0);
    assert_int_equal(lb_http_server_route(s, "DELETE", "/v1/tenant/{tenant_id}", h_ok, NULL), 0);
    assert_int_equal(lb_http_server_set_auth(s, k), 0);
    assert_int_equal(lb_http_server_start(s), 0);
    int port = lb_http_server_port(s);
    char vote[256], other_vote[256], del[256], health[128], metrics[128];
    snprintf(vote, sizeof(vote), "http://127.0.0.1:%d/v1/tenant/%s/timeline/%s/vote", port, TENANT,
             TIMELINE);
    snprintf(other_vote, sizeof(other_vote), "http://127.0.0.1:%d/v1/tenant/%s/timeline/%s/vote",
             port, OTHER, TIMELINE);
    snprintf(del, sizeof(del), "http://127.0.0.1:%d/v1/tenant/%s", port, TENANT);
    snprintf(health, sizeof(health), "http://127.0.0.1:%d/healthz", port);
    snprintf(metrics, sizeof(metrics), "http://127.0.0.1:%d/metrics", port);

    lb_http_options o = {.max_attempts = 1};
    lb_http_client *hc;
    assert_int_equal(lb_http_client_new(&o, &hc), 0);
    lb_buf www = LB_BUF_INIT;
    /* no token: 401 with WWW-Authenticate: Bearer; open routes answer */
    assert_int_equal(call(hc, "POST", vote, &www), 401);
    assert_true(www.len > 0 && strncmp(www.data, "Bearer", 6) == 0);
    assert_int_equal(call(hc, "DELETE", del, NULL), 401);
    assert_int_equal(call(hc, "GET", health, NULL), 200);
    assert_int_equal(call(hc, "GET", metrics, NULL), 200);

    /* a token that does not verify (key c is not loaded): 401 */
    char *bad = mint(f->c, LB_AUTH_MANAGEMENT, NULL, NULL);
    lb_auth_token *tok;
    assert_int_equal(lb_auth_token_new(bad, &tok), 0);
    lb_http_client_set_token(hc, tok);
    assert_int_equal(call(hc, "POST", vote, &www), 401);
    assert_non_null(strstr(www.data, "invalid_token"));
    lb_auth_token_free(tok);

    /* the compute of the timeline: vote yes, another tenant's no, delete no */
    char *cp = mint(f->a, LB_AUTH_COMPUTE, TENANT, TIMELINE);
    assert_int_equal(lb_auth_token_new(cp, &tok), 0);
    lb_http_client_set_token(hc, tok);
    assert_int_equal(call(hc, "POST", vote, NULL), 200);
    assert_int_equal(call(hc, "POST", other_vote, NULL), 403);
    assert_int_equal(call(hc, "DELETE", del, NULL), 403);
    lb_auth_token_free(tok);

    /* a pageserver may not vote */
    char *ps = mint(f->b, LB_AUTH_PAGESERVER, NULL, NULL);
    assert_int_equal(lb_auth_token_new(ps, &tok), 0);
    lb_http_client_set_token(hc, tok);
    assert_int_equal(call(hc, "POST", vote, NULL), 403);
    lb_auth_token_free(tok);

    /* management: everything */
    char *mg = mint(f->b, LB_AUTH_MANAGEMENT, NULL, NULL);
    assert_int_equal(lb_auth_token_new(mg, &tok), 0);
    lb_http_client_set_token(hc, tok);
    assert_int_equal(call(hc, "POST", other_vote, NULL), 200);
    assert_int_equal(call(hc, "DELETE", del, NULL), 200);
    lb_http_client_set_token(hc, NULL);
    lb_auth_token_free(tok);

    lb_buf_free(&www);
    lb_http_client_free(hc);
    lb_http_server_free(s);
    lb_auth_keys_free(k);
    free(bad);
    free(cp);
    free(ps);
    free(mg);
}

/* The read-only analytics role: parsed, named, scoped like any other. */
static void
test_analytics_role(void **state)
{
    (void)state;
    assert_int_equal(lb_auth_role_parse("analytics"), LB_AUTH_ANALYTICS);
    assert_string_equal(lb_auth_role_name(LB_AUTH_ANALYTICS), "analytics");
    lb_auth_claims c = {.role = LB_AUTH_ANALYTICS};
    snprintf(c.tenant, sizeof(c.tenant), "%s", TENANT);
    assert_true(lb_auth_allows(&c, LB_AUTH_ANALYTICS, TENANT, TIMELINE));
    assert_false(lb_auth_allows(&c, LB_AUTH_ANALYTICS, OTHER, TIMELINE));
    assert_false(lb_auth_allows(&c, LB_AUTH_COMPUTE, TENANT, TIMELINE));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_token_verifies_with_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_signature_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alg_none_and_hs256_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_and_not_yet_valid_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_with_two_keys_and_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_tokens_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_token_refused, setup, teardown),
        cmocka_unit_test(test_allows_by_role_and_scope),
        cmocka_unit_test(test_analytics_role),
        cmocka_unit_test_setup_teardown(test_token_file_load_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_routes_need_the_right_token, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
