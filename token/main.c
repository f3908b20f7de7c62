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
#include "startup.h"

static int
usage(FILE *out, int code)
{
    fprintf(out, "usage: lakebase-token keygen DIR [--name NAME]\n"
                 "       lakebase-token mint --key PRIV --role ROLE [--tenant T] [--timeline L]\n"
                 "                           [--sub NAME] [--endpoint HOST:PORT] [--ttl SECONDS]\n"
                 "       lakebase-token verify --keys PUB TOKEN|-\n"
                 "roles: management, safekeeper, pageserver, compute, analytics\n"
                 "`lakebase-token COMMAND --help` describes a command's options.\n");
    return code;
}

typedef struct token_conf {
    char *name, *key, *role, *tenant, *timeline, *sub, *endpoint, *keys;
    int64_t ttl_s;
} token_conf;

static const lb_config_setting keygen_settings[] = {
    LB_SETTING("name", LB_CONFIG_STRING, token_conf, name, "auth",
               "the pair's file name: DIR/NAME.key and DIR/NAME.pem"),
    LB_CONFIG_END,
};

static const lb_config_setting mint_settings[] = {
    LB_SETTING_REQUIRED("key", LB_CONFIG_STRING, token_conf, key, "the private key (PEM)"),
    LB_SETTING_REQUIRED("role", LB_CONFIG_STRING, token_conf, role,
                        "management, safekeeper, pageserver or compute"),
    LB_SETTING("tenant", LB_CONFIG_STRING, token_conf, tenant, NULL,
               "32 lowercase hex, or * for all tenants"),
    LB_SETTING("timeline", LB_CONFIG_STRING, token_conf, timeline, NULL, "32 lowercase hex"),
    LB_SETTING("sub", LB_CONFIG_STRING, token_conf, sub, NULL, "the component's name"),
    LB_SETTING("endpoint", LB_CONFIG_STRING, token_conf, endpoint, NULL,
               "compute tokens: host:port of the compute's PostgreSQL"),
    LB_SETTING_RANGE("ttl", LB_CONFIG_INT, token_conf, ttl_s, NULL,
                     "seconds until the token expires; none: it does not", 1,
                     100LL * 365 * 24 * 3600),
    LB_CONFIG_END,
};

static const lb_config_setting verify_settings[] = {
    LB_SETTING_REQUIRED("keys", LB_CONFIG_STRING, token_conf, keys,
                        "public key (PEM), or a directory of *.pem"),
    LB_CONFIG_END,
};

static int
keygen(const token_conf *conf, char *const *args)
{
    const char *dir = args[0], *name = conf->name;
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
mint(const token_conf *conf, char *const *args)
{
    (void)args;
    const char *role = conf->role, *tenant = conf->tenant, *timeline = conf->timeline;
    const char *sub = conf->sub, *endpoint = conf->endpoint;
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
    if (conf->ttl_s)
        c.exp = c.iat + conf->ttl_s;
    lb_auth_signer *signer;
    int rc = lb_auth_signer_load(conf->key, &signer);
    if (rc != 0) {
        fprintf(stderr, "lakebase-token: could not load private key \"%s\": %s\n", conf->key,
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
verify(const token_conf *conf, char *const *args)
{
    const char *keys_path = conf->keys, *arg = args[0];
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

/* The commands: each a settings table (common/startup.h) and what runs. */
static const struct token_cmd {
    const char *name, *usage;
    const lb_config_setting *settings;
    int npos; /* its positional arguments, all required */
    int (*run)(const token_conf *conf, char *const *args);
} commands[] = {
    {"keygen", "DIR [--name NAME]", keygen_settings, 1, keygen},
    {"mint", "--key PRIV --role ROLE [options]", mint_settings, 0, mint},
    {"verify", "--keys PUB TOKEN|-", verify_settings, 1, verify},
};

static int
run_command(const struct token_cmd *cmd, int argc, char **argv)
{
    char program[64];
    snprintf(program, sizeof(program), "lakebase-token %s", cmd->name);
    token_conf conf;
    memset(&conf, 0, sizeof(conf));
    const lb_startup_spec spec = {.program = program,
                                  .usage = cmd->usage,
                                  .settings = cmd->settings,
                                  .conf = &conf,
                                  .max_positional = cmd->npos,
                                  .level = LB_LOG_WARN};
    lb_config_result res;
    int code = lb_startup(&spec, argc, argv, &res);
    if (code >= 0)
        return code;
    if (res.npositional < cmd->npos) {
        fprintf(stderr, "%s: missing argument\n", program);
        code = LB_STARTUP_EXIT_USAGE;
    } else {
        code = cmd->run(&conf, res.positional);
    }
    lb_config_result_free(&res);
    lb_config_free(cmd->settings, &conf);
    return code;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout, 0);
    if (argc < 2)
        return usage(stderr, 2);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return run_command(&commands[i], argc - 1, argv + 1);
    return usage(stderr, 2);
}
