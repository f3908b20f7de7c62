/*
 * lakebase-token: make keys and tokens for component credentials.
 *
 *   lakebase-token keygen DIR [--name NAME]
 *       a new Ed25519 key pair: DIR/NAME.key (private, 0600) and
 *       DIR/NAME.pem (public); NAME defaults to "auth". A daemon's
 *       auth_public_keys may point at DIR: it reads *.pem only.
 *   lakebase-token mint --key PRIV --role ROLE [--tenant T] [--timeline L]
 *       [--sub NAME] [--endpoint HOST:PORT] [--ttl SECONDS]
 *       print a signed token (iat now; exp now+ttl when --ttl is given)
 *   lakebase-token verify --keys PUB TOKEN|-
 *       check a token (- reads it from stdin) and print its claims as JSON;
 *       exit 1 with the reason if it does not verify
 *
 * Only management (the operator, the controller, the launcher of a local
 * cluster) runs mint: it is the one that holds the private key. See
 * docs/auth.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"

static int
usage(void)
{
    fprintf(stderr,
            "usage: lakebase-token keygen DIR [--name NAME]\n"
            "       lakebase-token mint --key PRIV --role ROLE [--tenant T] [--timeline L]\n"
            "                           [--sub NAME] [--endpoint HOST:PORT] [--ttl SECONDS]\n"
            "       lakebase-token verify --keys PUB TOKEN|-\n"
            "roles: management, safekeeper, pageserver, compute\n");
    return 2;
}

/* The value of --name in argv (either "--name v" or "--name=v"), or NULL. */
static const char *
opt(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], name, n) != 0)
            continue;
        if (argv[i][n] == '=')
            return argv[i] + n + 1;
        if (argv[i][n] == '\0' && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

/* Every argument is a known option with a value, or one of npos positionals. */
static bool
args_ok(int argc, char **argv, const char *const known[], int npos, const char **pos)
{
    int seen = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            if (seen == npos)
                return false;
            pos[seen++] = argv[i];
            continue;
        }
        bool ok = false;
        for (int k = 0; known[k] && !ok; k++) {
            size_t n = strlen(known[k]);
            if (strncmp(argv[i], known[k], n) == 0 && argv[i][n] == '=')
                ok = true;
            else if (strcmp(argv[i], known[k]) == 0 && i + 1 < argc)
                ok = true, i++;
        }
        if (!ok)
            return false;
    }
    return seen == npos;
}

static int
cmd_keygen(int argc, char **argv)
{
    static const char *const known[] = {"--name", NULL};
    const char *dir;
    if (!args_ok(argc, argv, known, 1, &dir))
        return usage();
    const char *name = opt(argc, argv, "--name");
    if (!name)
        name = "auth";
    if (!*name || strchr(name, '/')) {
        fprintf(stderr, "lakebase-token: --name must be a file name\n");
        return 2;
    }
    int rc = lb_mkdir_p(dir, 0755);
    char priv[4096], pub[4096];
    snprintf(priv, sizeof(priv), "%s/%s.key", dir, name);
    snprintf(pub, sizeof(pub), "%s/%s.pem", dir, name);
    if (rc == 0)
        rc = lb_auth_keygen(priv, pub);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: could not make key pair \"%s\": %s\n", priv,
                lb_strerror(rc));
        return 1;
    }
    printf("private key: %s\npublic key: %s\n", priv, pub);
    return 0;
}

static int
cmd_mint(int argc, char **argv)
{
    static const char *const known[] = {"--key", "--role",     "--tenant", "--timeline",
                                        "--sub", "--endpoint", "--ttl",    NULL};
    if (!args_ok(argc, argv, known, 0, NULL))
        return usage();
    const char *key = opt(argc, argv, "--key"), *role = opt(argc, argv, "--role");
    const char *tenant = opt(argc, argv, "--tenant"), *timeline = opt(argc, argv, "--timeline");
    const char *sub = opt(argc, argv, "--sub"), *endpoint = opt(argc, argv, "--endpoint");
    const char *ttl = opt(argc, argv, "--ttl");
    if (!key || !role)
        return usage();
    lb_auth_claims c = {.role = lb_auth_role_parse(role)};
    if (!c.role) {
        fprintf(stderr, "lakebase-token: unknown role \"%s\"\n", role);
        return 2;
    }
    if ((sub && strlen(sub) >= sizeof(c.sub)) || (tenant && strlen(tenant) >= sizeof(c.tenant)) ||
        (timeline && strlen(timeline) >= sizeof(c.timeline)) ||
        (endpoint && strlen(endpoint) >= sizeof(c.endpoint))) {
        fprintf(stderr, "lakebase-token: a claim is too long\n");
        return 2;
    }
    snprintf(c.sub, sizeof(c.sub), "%s", sub ? sub : "");
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant && strcmp(tenant, "*") ? tenant : "");
    snprintf(c.timeline, sizeof(c.timeline), "%s", timeline ? timeline : "");
    snprintf(c.endpoint, sizeof(c.endpoint), "%s", endpoint ? endpoint : "");
    c.iat = (int64_t)time(NULL);
    if (ttl) {
        char *end;
        errno = 0;
        long long s = strtoll(ttl, &end, 10);
        if (errno || *end || end == ttl || s <= 0) {
            fprintf(stderr, "lakebase-token: --ttl must be a number of seconds > 0\n");
            return 2;
        }
        c.exp = c.iat + s;
    }
    lb_auth_signer *signer;
    int rc = lb_auth_signer_load(key, &signer);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: could not load private key \"%s\": %s\n", key,
                lb_strerror(rc));
        return 1;
    }
    char *token = NULL;
    rc = lb_auth_mint(signer, &c, &token);
    lb_auth_signer_free(signer);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: could not mint a token: %s\n%s\n", lb_strerror(rc),
                rc == -EINVAL ? "Tenant and timeline are 32 lowercase hex digits; a compute "
                                "token needs both, and a timeline needs its tenant."
                              : "");
        return rc == -EINVAL ? 2 : 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

static int
cmd_verify(int argc, char **argv)
{
    static const char *const known[] = {"--keys", NULL};
    const char *arg;
    if (!args_ok(argc, argv, known, 1, &arg))
        return usage();
    const char *keys_path = opt(argc, argv, "--keys");
    if (!keys_path)
        return usage();
    char token[LB_AUTH_TOKEN_MAX + 2];
    if (strcmp(arg, "-") == 0) {
        size_t n = fread(token, 1, sizeof(token) - 1, stdin);
        token[n] = '\0';
        token[strcspn(token, "\r\n")] = '\0';
    } else {
        snprintf(token, sizeof(token), "%s", arg);
    }
    lb_auth_keys *keys;
    int rc = lb_auth_keys_load(keys_path, &keys);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: could not load public keys \"%s\": %s\n", keys_path,
                lb_strerror(rc));
        return 1;
    }
    lb_auth_claims c;
    const char *why = NULL;
    rc = lb_auth_verify(keys, token, 0, &c, &why);
    lb_auth_keys_free(keys);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: token refused: %s\n", why ? why : lb_strerror(rc));
        return 1;
    }
    json_t *j = json_pack("{s:s}", "role", lb_auth_role_name(c.role));
    if (c.sub[0])
        json_object_set_new(j, "sub", json_string(c.sub));
    json_object_set_new(j, "tenant", json_string(c.tenant[0] ? c.tenant : "*"));
    if (c.timeline[0])
        json_object_set_new(j, "timeline", json_string(c.timeline));
    if (c.endpoint[0])
        json_object_set_new(j, "endpoint", json_string(c.endpoint));
    if (c.exp)
        json_object_set_new(j, "exp", json_integer(c.exp));
    if (c.nbf)
        json_object_set_new(j, "nbf", json_integer(c.nbf));
    if (c.iat)
        json_object_set_new(j, "iat", json_integer(c.iat));
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    printf("%s\n", text ? text : "{}");
    free(text);
    return 0;
}

int
main(int argc, char **argv)
{
    lb_log_set_level(LB_LOG_WARN);
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc - 2, argv + 2);
    if (strcmp(argv[1], "mint") == 0)
        return cmd_mint(argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0)
        return cmd_verify(argc - 2, argv + 2);
    return usage();
}
