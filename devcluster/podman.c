/*
 * podman.c: a Pod as podman arguments, and podman itself.
 *
 * A pod is one podman pod (its infra container holds the network, IPC and
 * UTS namespaces, as the pause container does in Kubernetes) plus one podman
 * container per container of the spec. Translation is pure: everything the
 * spec refers to outside itself (secrets and config maps for env, the pod's
 * address, where volumes live on the host) comes in through dc_pod_ctx, so
 * the kubelet resolves references first and a unit test can check the result
 * without podman. A spec that cannot be honoured is refused with the message
 * a real kubelet would put in the container's waiting state; nothing is
 * silently dropped except what has no meaning on one machine (resource
 * requests, image pull policies: images are always local, --pull never).
 *
 * Every podman invocation runs with lakebase's own configuration files
 * (dc_podman_setup), never the machine's.
 */
#include "podman.h"
#include "quantity.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "event_loop.h"

extern char **environ;

/* ---- argument vectors ---- */

int
dc_argv_add(dc_argv *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        char **v = realloc(a->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    a->v[a->n++] = copy;
    a->v[a->n] = NULL;
    return 0;
}

int
dc_argv_addf(dc_argv *a, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = dc_argv_add(a, s);
    free(s);
    return rc;
}

void
dc_argv_free(dc_argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof(*a));
}

/* ---- configuration and running ---- */

const char *
dc_podman_dir(void)
{
    const char *d = getenv("LB_PODMAN_DIR");
    return d && *d ? d : "/var/lib/lakebase/podman";
}

const char *
dc_podman_rundir(void)
{
    const char *d = getenv("LB_PODMAN_RUN");
    return d && *d ? d : "/run/lakebase/podman";
}

static int
mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Write path with contents unless it already holds exactly that. */
static int
write_if_changed(const char *path, const char *contents)
{
    size_t len = strlen(contents);
    FILE *f = fopen(path, "r");
    if (f) {
        char *old = malloc(len + 2);
        size_t n = old ? fread(old, 1, len + 1, f) : 0;
        fclose(f);
        bool same = old && n == len && memcmp(old, contents, len) == 0;
        free(old);
        if (same)
            return 0;
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    bool ok = fwrite(contents, 1, len, f) == len;
    if (fclose(f) != 0 || !ok) {
        unlink(tmp);
        return -EIO;
    }
    if (rename(tmp, path) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

int
dc_podman_setup(void)
{
    const char *dir = dc_podman_dir(), *run = dc_podman_rundir();
    char path[4096], conf[8192];
    int rc;
    const char *subdirs[] = {"storage", "networks"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
        if ((rc = mkdir_p(path, 0755)) != 0)
            return rc;
    }
    if ((rc = mkdir_p(run, 0755)) != 0)
        return rc;
    /* Same text as images/podman-env.sh writes, byte for byte. */
    snprintf(conf, sizeof(conf),
             "[containers]\n"
             "default_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n"
             "[engine]\n"
             "runtime = \"runc\"\n"
             "cgroup_manager = \"cgroupfs\"\n"
             "events_logger = \"file\"\n"
             "tmp_dir = \"%s/libpod\"\n"
             "[network]\n"
             "network_backend = \"cni\"\n"
             "network_config_dir = \"%s/networks\"\n",
             run, dir);
    snprintf(path, sizeof(path), "%s/containers.conf", dir);
    if ((rc = write_if_changed(path, conf)) != 0)
        return rc;
    if (setenv("CONTAINERS_CONF", path, 1) != 0)
        return -errno;
    snprintf(conf, sizeof(conf),
             "[storage]\n"
             "driver = \"overlay\"\n"
             "graphroot = \"%s/storage\"\n"
             "runroot = \"%s/storage\"\n",
             dir, run);
    snprintf(path, sizeof(path), "%s/storage.conf", dir);
    if ((rc = write_if_changed(path, conf)) != 0)
        return rc;
    if (setenv("CONTAINERS_STORAGE_CONF", path, 1) != 0)
        return -errno;
    return 0;
}

/* Start `podman ARGS...` with stdout and stderr on pipes (the read ends,
 * close-on-exec, into out_fd / err_fd). 0 or -errno. */
static int
spawn_podman(const char *const *args, pid_t *pid, int *out_fd, int *err_fd)
{
    dc_argv argv = {0};
    int rc = dc_argv_add(&argv, "podman");
    for (size_t i = 0; rc == 0 && args[i]; i++)
        rc = dc_argv_add(&argv, args[i]);
    if (rc) {
        dc_argv_free(&argv);
        return rc;
    }
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) {
        dc_argv_free(&argv);
        return -errno;
    }
    if (pipe2(pe, O_CLOEXEC) != 0) {
        rc = -errno;
        close(po[0]);
        close(po[1]);
        dc_argv_free(&argv);
        return rc;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    int sp = posix_spawnp(pid, "podman", &fa, &attr, argv.v, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(po[1]);
    close(pe[1]);
    dc_argv_free(&argv);
    if (sp != 0) {
        close(po[0]);
        close(pe[0]);
        return -sp;
    }
    *out_fd = po[0];
    *err_fd = pe[0];
    return 0;
}

static int
reap(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int
dc_podman_run(const char *const *args, lb_buf *out, lb_buf *err, int timeout_ms)
{
    pid_t pid;
    int fo, fe;
    int rc = spawn_podman(args, &pid, &fo, &fe);
    if (rc)
        return rc;
    int64_t deadline = timeout_ms > 0 ? lb_now_ms() + timeout_ms : 0;
    bool timed_out = false;
    struct pollfd fds[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open_fds = 2;
    char chunk[8192];
    while (open_fds > 0) {
        int wait_ms = -1;
        if (deadline) {
            int64_t left = deadline - lb_now_ms();
            if (left <= 0) {
                timed_out = true;
                kill(pid, SIGKILL);
                break;
            }
            wait_ms = (int)left;
        }
        int n = poll(fds, 2, wait_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            ssize_t r = read(fds[i].fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            lb_buf *sink = i == 0 ? out : err;
            if (sink)
                lb_buf_append(sink, chunk, (size_t)r);
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = reap(pid);
    return timed_out ? LB_ETIMEOUT : status;
}

int
dc_podman_stream(const char *const *args, dc_podman_output_fn on_output, dc_podman_keep_fn keep,
                 void *arg, int poll_ms)
{
    pid_t pid;
    int fo, fe;
    int rc = spawn_podman(args, &pid, &fo, &fe);
    if (rc)
        return rc;
    struct pollfd fds[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open_fds = 2;
    bool stopped = false;
    char chunk[8192];
    while (open_fds > 0 && !stopped) {
        int n = poll(fds, 2, poll_ms > 0 ? poll_ms : 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < 2 && !stopped; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            ssize_t r = read(fds[i].fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            if (on_output(arg, chunk, (size_t)r) != 0)
                stopped = true;
        }
        if (!stopped && keep && !keep(arg))
            stopped = true;
    }
    if (stopped)
        kill(pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = reap(pid);
    return stopped ? 0 : status;
}

/* ---- selectors ---- */

static bool
expr_matches(json_t *expr, json_t *labels)
{
    const char *key = json_string_value(json_object_get(expr, "key"));
    const char *op = json_string_value(json_object_get(expr, "operator"));
    json_t *values = json_object_get(expr, "values");
    if (!key || !op)
        return false;
    const char *have = json_string_value(json_object_get(labels, key));
    if (strcmp(op, "Exists") == 0)
        return have != NULL;
    if (strcmp(op, "DoesNotExist") == 0)
        return have == NULL;
    bool in = false;
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
    {
        if (have && json_string_value(v) && strcmp(have, json_string_value(v)) == 0)
            in = true;
    }
    if (strcmp(op, "In") == 0)
        return in;
    if (strcmp(op, "NotIn") == 0)
        return !in;
    return false;
}

bool
dc_label_selector_matches(json_t *selector, json_t *labels, bool plain_map)
{
    if (!json_is_object(selector))
        return false;
    json_t *match = plain_map ? selector : json_object_get(selector, "matchLabels");
    const char *k;
    json_t *v;
    json_object_foreach(match, k, v)
    {
        const char *have = json_string_value(json_object_get(labels, k));
        if (!have || !json_string_value(v) || strcmp(have, json_string_value(v)) != 0)
            return false;
    }
    if (!plain_map) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(selector, "matchExpressions"), i, e)
        {
            if (!expr_matches(e, labels))
                return false;
        }
    }
    return true;
}

/* ---- names ---- */

static const char *
jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static json_t *
jpath(json_t *obj, const char *a, const char *b)
{
    return json_object_get(json_object_get(obj, a), b);
}

int
dc_podman_pod_name(const char *cluster_id, json_t *pod, char *out, size_t cap)
{
    json_t *meta = json_object_get(pod, "metadata");
    const char *ns = jstr(meta, "namespace"), *name = jstr(meta, "name"), *uid = jstr(meta, "uid");
    int n = snprintf(out, cap, "%s-%s-%s-%.8s", cluster_id, ns ? ns : "default", name ? name : "",
                     uid ? uid : "");
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int
add_labels(dc_argv *a, const dc_pod_ctx *ctx, json_t *pod, const char *container)
{
    json_t *meta = json_object_get(pod, "metadata");
    int rc = 0;
    rc = rc ? rc : dc_argv_addf(a, "--label=io.lakebase.devcluster=%s", ctx->cluster_id);
    rc = rc ? rc : dc_argv_addf(a, "--label=io.lakebase.pod-uid=%s", jstr(meta, "uid"));
    rc = rc ? rc
            : dc_argv_addf(a, "--label=io.kubernetes.pod.namespace=%s", jstr(meta, "namespace"));
    rc = rc ? rc : dc_argv_addf(a, "--label=io.kubernetes.pod.name=%s", jstr(meta, "name"));
    if (container && !rc)
        rc = dc_argv_addf(a, "--label=io.kubernetes.container.name=%s", container);
    return rc;
}

int
dc_podman_pod_args(const dc_pod_ctx *ctx, json_t *pod, dc_argv *out, lb_buf *err)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    const char *name = jstr(meta, "name");
    if (!name || !jstr(meta, "uid") || !json_is_object(spec)) {
        lb_buf_printf(err, "pod has no metadata.name, metadata.uid or spec");
        return LB_EPARSE;
    }
    char pname[512];
    if (dc_podman_pod_name(ctx->cluster_id, pod, pname, sizeof(pname)) != 0) {
        lb_buf_printf(err, "pod name \"%s\" is too long", name);
        return LB_EPARSE;
    }
    const char *hostname = jstr(spec, "hostname");
    int rc = 0;
    rc = rc ? rc : dc_argv_add(out, "pod");
    rc = rc ? rc : dc_argv_add(out, "create");
    rc = rc ? rc : dc_argv_addf(out, "--name=%s", pname);
    rc = rc ? rc : dc_argv_addf(out, "--infra-name=%s-infra", pname);
    rc = rc ? rc : add_labels(out, ctx, pod, NULL);
    if (json_is_true(json_object_get(spec, "hostNetwork"))) {
        rc = rc ? rc : dc_argv_add(out, "--network=host");
    } else {
        /* A hostname longer than 63 characters is cut, as Kubernetes does. */
        rc = rc ? rc : dc_argv_addf(out, "--hostname=%.63s", hostname ? hostname : name);
    }
    if (ctx->hosts_file)
        rc = rc ? rc : dc_argv_add(out, "--no-hosts");
    return rc;
}

/* ---- env ---- */

static int
b64_decode(const char *in, lb_buf *out)
{
    size_t len = strlen(in);
    if (len % 4)
        return LB_EPARSE;
    unsigned char *dst = malloc(len / 4 * 3 + 1);
    if (!dst)
        return -ENOMEM;
    int n = EVP_DecodeBlock(dst, (const unsigned char *)in, (int)len);
    if (n < 0) {
        free(dst);
        return LB_EPARSE;
    }
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    int rc = lb_buf_append(out, dst, (size_t)n);
    free(dst);
    return rc;
}

/* The value of key in a Secret (base64 in data, or stringData) or a
 * ConfigMap (data, or base64 in binaryData). 0, LB_ENOTFOUND. */
static int
ref_value(const dc_pod_ctx *ctx, const char *kind, const char *name, const char *key, lb_buf *val)
{
    char refkey[512];
    snprintf(refkey, sizeof(refkey), "%s/%s", kind, name ? name : "");
    json_t *obj = json_object_get(ctx->refs, refkey);
    if (!obj)
        return LB_ENOTFOUND;
    bool secret = strcmp(kind, "secret") == 0;
    const char *s = json_string_value(jpath(obj, "data", key));
    if (s)
        return secret ? b64_decode(s, val) : lb_buf_append_str(val, s);
    s = json_string_value(jpath(obj, secret ? "stringData" : "binaryData", key));
    if (s)
        return secret ? lb_buf_append_str(val, s) : b64_decode(s, val);
    return LB_ENOTFOUND;
}

/* metadata.labels['k'] and metadata.annotations['k'] */
static const char *
field_map_value(json_t *pod, const char *path, const char *prefix, const char *map)
{
    size_t plen = strlen(prefix);
    if (strncmp(path, prefix, plen) != 0)
        return NULL;
    const char *k = path + plen;
    size_t klen = strlen(k);
    if (klen < 4 || k[0] != '[' || k[1] != '\'' || k[klen - 1] != ']' || k[klen - 2] != '\'')
        return NULL;
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(klen - 4), k + 2);
    const char *v = jstr(jpath(pod, "metadata", map), key);
    return v ? v : "";
}

static const char *
field_value(const dc_pod_ctx *ctx, json_t *pod, const char *path)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    if (strcmp(path, "metadata.name") == 0)
        return jstr(meta, "name");
    if (strcmp(path, "metadata.namespace") == 0)
        return jstr(meta, "namespace");
    if (strcmp(path, "metadata.uid") == 0)
        return jstr(meta, "uid");
    if (strcmp(path, "status.podIP") == 0)
        return ctx->pod_ip ? ctx->pod_ip : "";
    if (strcmp(path, "status.hostIP") == 0 || strcmp(path, "status.podIPs") == 0)
        return ctx->api_host ? ctx->api_host : "";
    if (strcmp(path, "spec.nodeName") == 0)
        return ctx->node_name ? ctx->node_name : "";
    if (strcmp(path, "spec.serviceAccountName") == 0) {
        const char *sa = jstr(spec, "serviceAccountName");
        return sa ? sa : "default";
    }
    const char *v = field_map_value(pod, path, "metadata.labels", "labels");
    return v ? v : field_map_value(pod, path, "metadata.annotations", "annotations");
}

/* Expand $(VAR) from vars (a JSON object of the env defined so far); $$ is a
 * literal $, and an undefined $(VAR) stays as written, as in Kubernetes. */
static int
expand(const char *in, json_t *vars, lb_buf *out)
{
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            lb_buf_append(out, "$", 1);
            p += 2;
            continue;
        }
        if (p[0] == '$' && p[1] == '(') {
            const char *close = strchr(p + 2, ')');
            if (close) {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(close - p - 2), p + 2);
                const char *v = jstr(vars, name);
                if (v) {
                    lb_buf_append_str(out, v);
                    p = close + 1;
                    continue;
                }
            }
        }
        lb_buf_append(out, p, 1);
        p++;
    }
    return out->data || !*in ? 0 : -ENOMEM;
}

/* The container's environment, in order, into vars (name -> value). */
static int
build_env(const dc_pod_ctx *ctx, json_t *pod, json_t *c, json_t *vars, lb_buf *err)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", ctx->api_port);
    if (ctx->api_host && *ctx->api_host) {
        char url[300];
        json_object_set_new(vars, "KUBERNETES_SERVICE_HOST", json_string(ctx->api_host));
        json_object_set_new(vars, "KUBERNETES_SERVICE_PORT", json_string(port));
        json_object_set_new(vars, "KUBERNETES_SERVICE_PORT_HTTPS", json_string(port));
        snprintf(url, sizeof(url), "tcp://%s:%s", ctx->api_host, port);
        json_object_set_new(vars, "KUBERNETES_PORT", json_string(url));
    }
    size_t i;
    json_t *from;
    json_array_foreach(json_object_get(c, "envFrom"), i, from)
    {
        const char *prefix = jstr(from, "prefix");
        json_t *cm = json_object_get(from, "configMapRef"),
               *sec = json_object_get(from, "secretRef");
        const char *kind = cm ? "configmap" : "secret";
        json_t *ref = cm ? cm : sec;
        char refkey[512];
        snprintf(refkey, sizeof(refkey), "%s/%s", kind, jstr(ref, "name") ? jstr(ref, "name") : "");
        json_t *obj = json_object_get(ctx->refs, refkey);
        if (!obj) {
            if (json_is_true(json_object_get(ref, "optional")))
                continue;
            lb_buf_printf(err, "%s \"%s\" not found", cm ? "configmap" : "secret",
                          jstr(ref, "name") ? jstr(ref, "name") : "");
            return LB_ENOTFOUND;
        }
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(obj, "data"), k, v)
        {
            lb_buf val = LB_BUF_INIT, key = LB_BUF_INIT;
            int rc = ref_value(ctx, kind, jstr(ref, "name"), k, &val);
            lb_buf_printf(&key, "%s%s", prefix ? prefix : "", k);
            if (rc == 0)
                json_object_set_new(vars, key.data,
                                    json_stringn(val.data ? val.data : "", val.len));
            lb_buf_free(&val);
            lb_buf_free(&key);
        }
    }
    json_t *e;
    json_array_foreach(json_object_get(c, "env"), i, e)
    {
        const char *name = jstr(e, "name");
        if (!name || !*name) {
            lb_buf_printf(err, "env[%zu] has no name", i);
            return LB_EPARSE;
        }
        json_t *vf = json_object_get(e, "valueFrom");
        lb_buf val = LB_BUF_INIT;
        int rc = 0;
        if (!vf) {
            const char *v = jstr(e, "value");
            rc = expand(v ? v : "", vars, &val);
        } else if (json_object_get(vf, "secretKeyRef") || json_object_get(vf, "configMapKeyRef")) {
            bool secret = json_object_get(vf, "secretKeyRef") != NULL;
            json_t *ref = json_object_get(vf, secret ? "secretKeyRef" : "configMapKeyRef");
            const char *rname = jstr(ref, "name"), *key = jstr(ref, "key");
            rc = ref_value(ctx, secret ? "secret" : "configmap", rname, key ? key : "", &val);
            if (rc == LB_ENOTFOUND) {
                if (json_is_true(json_object_get(ref, "optional"))) {
                    lb_buf_free(&val);
                    continue;
                }
                lb_buf_printf(err, "couldn't find key %s in %s \"%s\"", key ? key : "",
                              secret ? "Secret" : "ConfigMap", rname ? rname : "");
            } else if (rc == LB_EPARSE) {
                lb_buf_printf(err, "secret \"%s\" key %s is not valid base64", rname ? rname : "",
                              key ? key : "");
            }
        } else if (json_object_get(vf, "fieldRef")) {
            const char *path = jstr(json_object_get(vf, "fieldRef"), "fieldPath");
            const char *v = path ? field_value(ctx, pod, path) : NULL;
            if (!v) {
                lb_buf_printf(err, "env %s: unsupported fieldRef \"%s\"", name, path ? path : "");
                rc = LB_EUNSUPPORTED;
            } else {
                rc = lb_buf_append_str(&val, v);
            }
        } else {
            lb_buf_printf(err, "env %s: unsupported valueFrom", name);
            rc = LB_EUNSUPPORTED;
        }
        if (rc) {
            lb_buf_free(&val);
            return rc;
        }
        json_object_set_new(vars, name, json_stringn(val.data ? val.data : "", val.len));
        lb_buf_free(&val);
    }
    return 0;
}

/* ---- volumes ---- */

static json_t *
find_named(json_t *array, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
    {
        const char *n = jstr(v, "name");
        if (n && strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

static bool
safe_path(const char *p)
{
    /* podman's -v syntax splits on ':'; ',' would end a --mount option */
    return p && *p && !strchr(p, ':') && !strchr(p, ',') && !strstr(p, "..");
}

static int
add_mounts(const dc_pod_ctx *ctx, json_t *pod, json_t *c, dc_argv *out, lb_buf *err)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *ns = jstr(json_object_get(pod, "metadata"), "namespace");
    bool sa_mounted = false;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(c, "volumeMounts"), i, m)
    {
        const char *vname = jstr(m, "name"), *dst = jstr(m, "mountPath");
        const char *sub = jstr(m, "subPath");
        json_t *vol = vname ? find_named(json_object_get(spec, "volumes"), vname) : NULL;
        if (!vol) {
            lb_buf_printf(err, "volumeMounts[%zu]: volume \"%s\" not found", i, vname ? vname : "");
            return LB_EPARSE;
        }
        if (!safe_path(dst) || dst[0] != '/' || (sub && *sub && !safe_path(sub))) {
            lb_buf_printf(err, "volumeMounts[%zu]: mountPath \"%s\" or subPath is not usable", i,
                          dst ? dst : "");
            return LB_EPARSE;
        }
        bool ro = json_is_true(json_object_get(m, "readOnly"));
        char host[4096];
        json_t *pvc = json_object_get(vol, "persistentVolumeClaim");
        json_t *hp = json_object_get(vol, "hostPath");
        if (pvc) {
            const char *claim = jstr(pvc, "claimName");
            if (!safe_path(claim) || strchr(claim, '/')) {
                lb_buf_printf(err, "volume \"%s\": bad claimName", vname);
                return LB_EPARSE;
            }
            snprintf(host, sizeof(host), "%s/%s/%s", ctx->pvc_root, ns ? ns : "default", claim);
            ro = ro || json_is_true(json_object_get(pvc, "readOnly"));
        } else if (hp) {
            const char *p = jstr(hp, "path");
            if (!safe_path(p) || p[0] != '/') {
                lb_buf_printf(err, "volume \"%s\": bad hostPath", vname);
                return LB_EPARSE;
            }
            snprintf(host, sizeof(host), "%s", p);
        } else if (json_object_get(vol, "emptyDir") || json_object_get(vol, "configMap") ||
                   json_object_get(vol, "secret") || json_object_get(vol, "downwardAPI") ||
                   json_object_get(vol, "projected")) {
            if (!safe_path(vname) || strchr(vname, '/')) {
                lb_buf_printf(err, "volume \"%s\": bad name", vname);
                return LB_EPARSE;
            }
            snprintf(host, sizeof(host), "%s/%s", ctx->volume_root, vname);
            if (!json_object_get(vol, "emptyDir"))
                ro = true; /* the kubelet mounts these read-only */
        } else {
            lb_buf_printf(err, "volume \"%s\": unsupported volume type", vname);
            return LB_EUNSUPPORTED;
        }
        if (sub && *sub) {
            size_t l = strlen(host);
            snprintf(host + l, sizeof(host) - l, "/%s", sub);
        }
        if (strcmp(dst, "/var/run/secrets/kubernetes.io/serviceaccount") == 0)
            sa_mounted = true;
        int rc = dc_argv_addf(out, "--volume=%s:%s%s", host, dst, ro ? ":ro" : "");
        if (rc)
            return rc;
    }
    json_t *automount = json_object_get(spec, "automountServiceAccountToken");
    if (ctx->sa_dir && !sa_mounted && !json_is_false(automount)) {
        int rc = dc_argv_addf(out, "--volume=%s:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                              ctx->sa_dir);
        if (rc)
            return rc;
    }
    if (ctx->hosts_file && !json_is_true(json_object_get(spec, "hostNetwork")))
        return dc_argv_addf(out, "--volume=%s:/etc/hosts:ro", ctx->hosts_file);
    return 0;
}

/* ---- security context and resources ---- */

/* A field of the container's securityContext, else the pod's. */
static json_t *
sec_field(json_t *pod, json_t *c, const char *key)
{
    json_t *v = jpath(c, "securityContext", key);
    return v ? v : jpath(json_object_get(pod, "spec"), "securityContext", key);
}

static bool
image_user_is_root(const char *user)
{
    if (!user || !*user)
        return true;
    char u[128];
    snprintf(u, sizeof(u), "%s", user);
    char *colon = strchr(u, ':');
    if (colon)
        *colon = 0;
    return strcmp(u, "0") == 0 || strcmp(u, "root") == 0;
}

static int
add_security(const dc_pod_ctx *ctx, json_t *pod, json_t *c, dc_argv *out, lb_buf *err)
{
    json_t *uid = sec_field(pod, c, "runAsUser"), *gid = sec_field(pod, c, "runAsGroup");
    json_t *nonroot = sec_field(pod, c, "runAsNonRoot");
    int rc = 0;
    if (uid && !json_is_integer(uid)) {
        lb_buf_printf(err, "securityContext.runAsUser must be an integer");
        return LB_EPARSE;
    }
    if (gid && !json_is_integer(gid)) {
        lb_buf_printf(err, "securityContext.runAsGroup must be an integer");
        return LB_EPARSE;
    }
    if (json_is_true(nonroot)) {
        if (uid && json_integer_value(uid) == 0) {
            lb_buf_printf(err, "container's runAsUser breaks non-root policy");
            return LB_EPARSE;
        }
        if (!uid && ctx->image_user) {
            char u[128];
            snprintf(u, sizeof(u), "%s", ctx->image_user);
            char *colon = strchr(u, ':');
            if (colon)
                *colon = 0;
            if (image_user_is_root(u)) {
                lb_buf_printf(err, "container has runAsNonRoot and image will run as root");
                return LB_EPARSE;
            }
            for (const char *p = u; *p; p++) {
                if (!isdigit((unsigned char)*p)) {
                    lb_buf_printf(err,
                                  "container has runAsNonRoot and image has non-numeric user "
                                  "(%s), cannot verify user is non-root",
                                  u);
                    return LB_EPARSE;
                }
            }
        }
    }
    if (uid && gid)
        rc = dc_argv_addf(out, "--user=%lld:%lld", (long long)json_integer_value(uid),
                          (long long)json_integer_value(gid));
    else if (uid)
        rc = dc_argv_addf(out, "--user=%lld", (long long)json_integer_value(uid));
    else if (gid) {
        char u[128];
        snprintf(u, sizeof(u), "%s", ctx->image_user && *ctx->image_user ? ctx->image_user : "0");
        char *colon = strchr(u, ':');
        if (colon)
            *colon = 0;
        rc = dc_argv_addf(out, "--user=%s:%lld", u, (long long)json_integer_value(gid));
    }
    json_t *psc = jpath(pod, "spec", "securityContext");
    json_t *fsgroup = json_object_get(psc, "fsGroup");
    if (!rc && json_is_integer(fsgroup))
        rc = dc_argv_addf(out, "--group-add=%lld", (long long)json_integer_value(fsgroup));
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(psc, "supplementalGroups"), i, g)
    {
        if (!rc && json_is_integer(g))
            rc = dc_argv_addf(out, "--group-add=%lld", (long long)json_integer_value(g));
    }
    json_t *csc = json_object_get(c, "securityContext");
    if (!rc && json_is_true(json_object_get(csc, "privileged")))
        rc = dc_argv_add(out, "--privileged");
    if (!rc && json_is_true(json_object_get(csc, "readOnlyRootFilesystem"))) {
        rc = dc_argv_add(out, "--read-only");
        /* Kubernetes mounts no tmpfs on a read-only root; podman would. */
        rc = rc ? rc : dc_argv_add(out, "--read-only-tmpfs=false");
    }
    if (!rc && json_is_false(json_object_get(csc, "allowPrivilegeEscalation")))
        rc = dc_argv_add(out, "--security-opt=no-new-privileges");
    json_t *caps = json_object_get(csc, "capabilities");
    json_array_foreach(json_object_get(caps, "drop"), i, g)
    {
        const char *cap = json_string_value(g);
        if (!rc && cap)
            rc = dc_argv_addf(out, "--cap-drop=%s", strcasecmp(cap, "ALL") == 0 ? "all" : cap);
    }
    json_array_foreach(json_object_get(caps, "add"), i, g)
    {
        const char *cap = json_string_value(g);
        if (!rc && cap)
            rc = dc_argv_addf(out, "--cap-add=%s", cap);
    }
    return rc;
}

static int
add_resources(json_t *c, dc_argv *out, lb_buf *err)
{
    json_t *limits = jpath(c, "resources", "limits");
    json_t *mem = json_object_get(limits, "memory"), *cpu = json_object_get(limits, "cpu");
    char q[64];
    int rc = 0;
    if (mem) {
        int64_t bytes;
        const char *s = json_is_string(mem) ? json_string_value(mem) : NULL;
        if (json_is_integer(mem)) {
            snprintf(q, sizeof(q), "%lld", (long long)json_integer_value(mem));
            s = q;
        }
        if (!s || lb_quantity_parse(s, &bytes) != 0 || bytes <= 0) {
            lb_buf_printf(err, "resources.limits.memory: quantity \"%s\" is not valid", s ? s : "");
            return LB_EPARSE;
        }
        /* podman's minimum is 6 MiB */
        rc = dc_argv_addf(out, "--memory=%lld", (long long)(bytes < 6291456 ? 6291456 : bytes));
    }
    if (!rc && cpu) {
        int64_t milli;
        const char *s = json_is_string(cpu) ? json_string_value(cpu) : NULL;
        if (json_is_integer(cpu)) {
            snprintf(q, sizeof(q), "%lld", (long long)json_integer_value(cpu));
            s = q;
        }
        if (!s || lb_quantity_milli(s, &milli) != 0 || milli <= 0) {
            lb_buf_printf(err, "resources.limits.cpu: quantity \"%s\" is not valid", s ? s : "");
            return LB_EPARSE;
        }
        rc = dc_argv_addf(out, "--cpus=%lld.%03lld", (long long)(milli / 1000),
                          (long long)(milli % 1000));
    }
    return rc;
}

/* ---- the container ---- */

int
dc_podman_container_args(const dc_pod_ctx *ctx, json_t *pod, json_t *c, dc_argv *out, lb_buf *err)
{
    const char *cname = jstr(c, "name"), *image = jstr(c, "image");
    if (!cname || !*cname || !image || !*image) {
        lb_buf_printf(err, "container has no name or image");
        return LB_EPARSE;
    }
    char pname[512];
    if (dc_podman_pod_name(ctx->cluster_id, pod, pname, sizeof(pname)) != 0) {
        lb_buf_printf(err, "pod name is too long");
        return LB_EPARSE;
    }
    json_t *vars = json_object();
    if (!vars)
        return -ENOMEM;
    int rc = build_env(ctx, pod, c, vars, err);
    rc = rc ? rc : dc_argv_add(out, "create");
    rc = rc ? rc : dc_argv_addf(out, "--name=%s-%s", pname, cname);
    rc = rc ? rc : dc_argv_addf(out, "--pod=%s", pname);
    rc = rc ? rc : add_labels(out, ctx, pod, cname);
    rc = rc ? rc : dc_argv_add(out, "--pull=never");
    rc = rc ? rc : dc_argv_add(out, "--restart=no");
    rc = rc ? rc : dc_argv_add(out, "--log-driver=k8s-file");
    if (!rc && jstr(c, "workingDir"))
        rc = dc_argv_addf(out, "--workdir=%s", jstr(c, "workingDir"));
    if (!rc && json_is_true(json_object_get(c, "tty")))
        rc = dc_argv_add(out, "--tty");
    if (!rc && json_is_true(json_object_get(c, "stdin")))
        rc = dc_argv_add(out, "--interactive");
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v)
    {
        if (!rc)
            rc = dc_argv_addf(out, "--env=%s=%s", k, json_string_value(v));
    }
    rc = rc ? rc : add_mounts(ctx, pod, c, out, err);
    rc = rc ? rc : add_security(ctx, pod, c, out, err);
    rc = rc ? rc : add_resources(c, out, err);
    json_t *command = json_object_get(c, "command"), *args = json_object_get(c, "args");
    size_t i;
    json_t *a;
    if (!rc && json_array_size(command) > 0) {
        /* --entrypoint as a JSON array; the image's CMD no longer applies
         * (Kubernetes: command replaces ENTRYPOINT and drops CMD). */
        json_t *expanded = json_array();
        json_array_foreach(command, i, a)
        {
            lb_buf b = LB_BUF_INIT;
            expand(json_string_value(a) ? json_string_value(a) : "", vars, &b);
            json_array_append_new(expanded, json_stringn(b.data ? b.data : "", b.len));
            lb_buf_free(&b);
        }
        char *ep = json_dumps(expanded, JSON_COMPACT);
        json_decref(expanded);
        rc = ep ? dc_argv_addf(out, "--entrypoint=%s", ep) : -ENOMEM;
        free(ep);
    }
    rc = rc ? rc : dc_argv_add(out, image);
    json_array_foreach(args, i, a)
    {
        if (rc)
            break;
        lb_buf b = LB_BUF_INIT;
        rc = expand(json_string_value(a) ? json_string_value(a) : "", vars, &b);
        rc = rc ? rc : dc_argv_add(out, b.data ? b.data : "");
        lb_buf_free(&b);
    }
    json_decref(vars);
    return rc;
}
