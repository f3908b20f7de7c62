/*
 * volumes.c: configMap, secret, downwardAPI and projected volumes as files.
 *
 * Kubernetes writes these through an atomic symlink swap and refreshes them
 * while the pod runs; devcluster writes them once, when the pod starts (a
 * changed ConfigMap reaches a pod when the pod is recreated). Paths inside a
 * volume come from the spec: an absolute path or one with ".." is refused,
 * so a manifest cannot write outside its volume.
 */
#include "volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"

static const char *
jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int
dc_mkdirs(const char *path, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, c ? 0755 : mode) == 0) {
            if (!c)
                chmod(tmp, mode); /* past the umask */
        } else if (errno != EEXIST) {
            return -errno;
        }
        if (!c)
            break;
        *p = c;
    }
    return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* nftw passes no argument: the fsGroup walk's parameters, per thread. */
static __thread gid_t fs_gid;
static __thread bool fs_writable;

static int
fsgroup_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    if (S_ISLNK(st->st_mode))
        return 0;
    mode_t mode = st->st_mode & 07777;
    if (S_ISDIR(st->st_mode))
        mode |= S_IRGRP | S_IXGRP | (fs_writable ? S_IWGRP | S_ISGID : 0);
    else if (mode & S_IRUSR)
        mode |= S_IRGRP | (fs_writable && (mode & S_IWUSR) ? S_IWGRP : 0);
    if (lchown(path, (uid_t)-1, fs_gid) != 0 || chmod(path, mode) != 0)
        return -1;
    return 0;
}

int
dc_volumes_apply_fsgroup(const char *path, long gid, bool writable)
{
    if (gid < 0)
        return -EINVAL;
    fs_gid = (gid_t)gid;
    fs_writable = writable;
    if (nftw(path, fsgroup_one, 32, FTW_PHYS) != 0)
        return errno ? -errno : -EIO;
    return 0;
}

int
dc_rmtree(const char *path)
{
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static bool
rel_path_ok(const char *p)
{
    return p && *p && p[0] != '/' && !strstr(p, "..");
}

/* Write bytes to root/rel (parents created), mode. */
static int
write_file(const char *root, const char *rel, const void *bytes, size_t len, int mode)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    int rc = dc_mkdirs(path, 0755);
    *slash = '/';
    if (rc)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *p = bytes;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
        p += n;
        len -= (size_t)n;
    }
    fchmod(fd, (mode_t)mode);
    return close(fd) == 0 ? 0 : -errno;
}

static int
b64(const char *in, lb_buf *out)
{
    size_t len = strlen(in);
    if (len % 4)
        return LB_EPARSE;
    unsigned char *dst = malloc(len / 4 * 3 + 1);
    if (!dst)
        return -ENOMEM;
    int n = EVP_DecodeBlock(dst, (const unsigned char *)in, (int)len);
    if (n >= 0) {
        n -= (len >= 1 && in[len - 1] == '=') + (len >= 2 && in[len - 2] == '=');
        lb_buf_append(out, dst, (size_t)n);
    }
    free(dst);
    return n < 0 ? LB_EPARSE : 0;
}

/* The bytes of key in a ConfigMap or Secret. */
static int
object_value(json_t *obj, bool secret, const char *key, lb_buf *val)
{
    const char *s = jstr(json_object_get(obj, "data"), key);
    if (s)
        return secret ? b64(s, val) : lb_buf_append_str(val, s);
    s = jstr(json_object_get(obj, secret ? "stringData" : "binaryData"), key);
    if (s)
        return secret ? lb_buf_append_str(val, s) : b64(s, val);
    return LB_ENOTFOUND;
}

/* configMap / secret source: every key, or the listed items. */
static int
write_keys(const char *root, json_t *src, bool secret, json_t *refs, int default_mode, lb_buf *err)
{
    const char *name = jstr(src, secret ? "secretName" : "name");
    if (!name)
        name = jstr(src, "name");
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", secret ? "secret" : "configmap", name ? name : "");
    json_t *obj = json_object_get(refs, key);
    bool optional = json_is_true(json_object_get(src, "optional"));
    if (!obj) {
        if (optional)
            return 0;
        lb_buf_printf(err, "%s \"%s\" not found", secret ? "secret" : "configmap",
                      name ? name : "");
        return LB_ENOTFOUND;
    }
    json_t *mode_j = json_object_get(src, "defaultMode");
    int mode = json_is_integer(mode_j) ? (int)json_integer_value(mode_j) : default_mode;
    json_t *items = json_object_get(src, "items");
    int rc = 0;
    if (json_array_size(items) > 0) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            const char *k = jstr(it, "key"), *p = jstr(it, "path");
            json_t *m = json_object_get(it, "mode");
            if (!k || !rel_path_ok(p)) {
                lb_buf_printf(err, "%s \"%s\": items[%zu] has no key or a bad path", key, name, i);
                return LB_EPARSE;
            }
            lb_buf val = LB_BUF_INIT;
            rc = object_value(obj, secret, k, &val);
            if (rc == LB_ENOTFOUND)
                lb_buf_printf(err, "%s \"%s\" has no key %s", secret ? "secret" : "configmap", name,
                              k);
            if (rc == 0)
                rc = write_file(root, p, val.data ? val.data : "", val.len,
                                json_is_integer(m) ? (int)json_integer_value(m) : mode);
            lb_buf_free(&val);
            if (rc)
                return rc;
        }
        return 0;
    }
    const char *maps[] = {"data", secret ? "stringData" : "binaryData"};
    for (int m = 0; m < 2; m++) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(obj, maps[m]), k, v)
        {
            if (!rel_path_ok(k) || strchr(k, '/'))
                continue;
            lb_buf val = LB_BUF_INIT;
            rc = object_value(obj, secret, k, &val);
            if (rc == 0)
                rc = write_file(root, k, val.data ? val.data : "", val.len, mode);
            lb_buf_free(&val);
            if (rc) {
                lb_buf_printf(err, "%s \"%s\": key %s could not be written", key, name, k);
                return rc;
            }
        }
    }
    return 0;
}

/* labels and annotations as Kubernetes writes them: key="value" lines. */
static void
format_map(json_t *map, lb_buf *out)
{
    const char **keys = calloc(json_object_size(map) + 1, sizeof(*keys));
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) keys[n++] = k;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        const char *s = jstr(map, keys[i]);
        lb_buf_printf(out, "%s=\"", keys[i]);
        for (const char *p = s ? s : ""; *p; p++) {
            if (*p == '"' || *p == '\\')
                lb_buf_append(out, "\\", 1);
            if (*p == '\n')
                lb_buf_append_str(out, "\\n");
            else
                lb_buf_append(out, p, 1);
        }
        lb_buf_printf(out, "\"%s", i + 1 < n ? "\n" : "");
    }
    free(keys);
}

static int
write_downward(const char *root, json_t *pod, json_t *src, lb_buf *err)
{
    size_t i;
    json_t *it;
    json_t *meta = json_object_get(pod, "metadata");
    json_array_foreach(json_object_get(src, "items"), i, it)
    {
        const char *p = jstr(it, "path");
        const char *field = jstr(json_object_get(it, "fieldRef"), "fieldPath");
        if (!rel_path_ok(p) || !field) {
            lb_buf_printf(err, "downwardAPI items[%zu] has a bad path or no fieldRef", i);
            return LB_EPARSE;
        }
        lb_buf val = LB_BUF_INIT;
        if (strcmp(field, "metadata.labels") == 0)
            format_map(json_object_get(meta, "labels"), &val);
        else if (strcmp(field, "metadata.annotations") == 0)
            format_map(json_object_get(meta, "annotations"), &val);
        else if (strcmp(field, "metadata.name") == 0 || strcmp(field, "metadata.namespace") == 0 ||
                 strcmp(field, "metadata.uid") == 0) {
            const char *s = jstr(meta, field + strlen("metadata."));
            lb_buf_append_str(&val, s ? s : "");
        } else {
            lb_buf_printf(err, "downwardAPI: unsupported fieldPath \"%s\"", field);
            lb_buf_free(&val);
            return LB_EUNSUPPORTED;
        }
        int rc = write_file(root, p, val.data ? val.data : "", val.len, 0644);
        lb_buf_free(&val);
        if (rc)
            return rc;
    }
    return 0;
}

static int
copy_file(const char *from, const char *root, const char *rel)
{
    FILE *f = from ? fopen(from, "r") : NULL;
    lb_buf b = LB_BUF_INIT;
    if (f) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            lb_buf_append(&b, chunk, n);
        fclose(f);
    }
    int rc = write_file(root, rel, b.data ? b.data : "", b.len, 0644);
    lb_buf_free(&b);
    return rc;
}

int
dc_volumes_write_sa(const char *sa_dir, const char *token, const char *ca_file, const char *ns)
{
    int rc = dc_mkdirs(sa_dir, 0755);
    rc = rc ? rc : write_file(sa_dir, "token", token ? token : "", token ? strlen(token) : 0, 0644);
    rc = rc ? rc : copy_file(ca_file, sa_dir, "ca.crt");
    rc = rc ? rc : write_file(sa_dir, "namespace", ns, strlen(ns), 0644);
    return rc;
}

int
dc_volumes_prepare(json_t *pod, const char *volume_root, json_t *refs, const char *token,
                   const char *ca_file, lb_buf *err)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *ns = jstr(json_object_get(pod, "metadata"), "namespace");
    size_t i;
    json_t *vol;
    int rc = dc_mkdirs(volume_root, 0755);
    if (rc) {
        lb_buf_printf(err, "could not create \"%s\": %s", volume_root, strerror(-rc));
        return rc;
    }
    json_array_foreach(json_object_get(spec, "volumes"), i, vol)
    {
        const char *name = jstr(vol, "name");
        if (!name || !rel_path_ok(name) || strchr(name, '/')) {
            lb_buf_printf(err, "volumes[%zu] has no usable name", i);
            return LB_EPARSE;
        }
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%s", volume_root, name);
        if (json_object_get(vol, "emptyDir")) {
            rc = dc_mkdirs(dir, 0777);
        } else if (json_object_get(vol, "configMap")) {
            rc = dc_mkdirs(dir, 0755);
            rc = rc ? rc
                    : write_keys(dir, json_object_get(vol, "configMap"), false, refs, 0644, err);
        } else if (json_object_get(vol, "secret")) {
            rc = dc_mkdirs(dir, 0755);
            rc = rc ? rc : write_keys(dir, json_object_get(vol, "secret"), true, refs, 0644, err);
        } else if (json_object_get(vol, "downwardAPI")) {
            rc = dc_mkdirs(dir, 0755);
            rc = rc ? rc : write_downward(dir, pod, json_object_get(vol, "downwardAPI"), err);
        } else if (json_object_get(vol, "projected")) {
            rc = dc_mkdirs(dir, 0755);
            size_t j;
            json_t *src;
            json_array_foreach(json_object_get(json_object_get(vol, "projected"), "sources"), j,
                               src)
            {
                if (rc)
                    break;
                json_t *sat = json_object_get(src, "serviceAccountToken");
                if (sat) {
                    const char *p = jstr(sat, "path");
                    if (!rel_path_ok(p)) {
                        lb_buf_printf(err, "projected serviceAccountToken has a bad path");
                        return LB_EPARSE;
                    }
                    rc = write_file(dir, p, token ? token : "", token ? strlen(token) : 0, 0644);
                } else if (json_object_get(src, "configMap")) {
                    rc = write_keys(dir, json_object_get(src, "configMap"), false, refs, 0644, err);
                } else if (json_object_get(src, "secret")) {
                    rc = write_keys(dir, json_object_get(src, "secret"), true, refs, 0644, err);
                } else if (json_object_get(src, "downwardAPI")) {
                    rc = write_downward(dir, pod, json_object_get(src, "downwardAPI"), err);
                }
            }
            /* kube-root-ca.crt and namespace in the default projected token volume */
            (void)ca_file;
            (void)ns;
        }
        if (rc) {
            if (err->len == 0)
                lb_buf_printf(err, "volume \"%s\": %s", name,
                              strerror(rc < 0 && rc > -4096 ? -rc : EIO));
            return rc;
        }
    }
    /* fsGroup: the pod's group owns its volumes, as the kubelet arranges */
    json_t *fsgroup = json_object_get(json_object_get(spec, "securityContext"), "fsGroup");
    if (json_is_integer(fsgroup)) {
        json_array_foreach(json_object_get(spec, "volumes"), i, vol)
        {
            if (json_object_get(vol, "persistentVolumeClaim") || json_object_get(vol, "hostPath"))
                continue; /* claims: the kubelet, when it mounts them; hostPath: never */
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s/%s", volume_root, jstr(vol, "name"));
            rc = dc_volumes_apply_fsgroup(dir, (long)json_integer_value(fsgroup),
                                          json_object_get(vol, "emptyDir") != NULL);
            if (rc) {
                lb_buf_printf(err, "volume \"%s\": could not apply fsGroup: %s", jstr(vol, "name"),
                              strerror(-rc));
                return rc;
            }
        }
    }
    return 0;
}

static void
need(json_t *set, const char *kind, const char *name)
{
    if (!name)
        return;
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", kind, name);
    json_object_set_new(set, key, json_true());
}

static void
need_containers(json_t *set, json_t *containers)
{
    size_t i, j;
    json_t *c, *e;
    json_array_foreach(containers, i, c)
    {
        json_array_foreach(json_object_get(c, "env"), j, e)
        {
            json_t *vf = json_object_get(e, "valueFrom");
            need(set, "secret", jstr(json_object_get(vf, "secretKeyRef"), "name"));
            need(set, "configmap", jstr(json_object_get(vf, "configMapKeyRef"), "name"));
        }
        json_array_foreach(json_object_get(c, "envFrom"), j, e)
        {
            need(set, "secret", jstr(json_object_get(e, "secretRef"), "name"));
            need(set, "configmap", jstr(json_object_get(e, "configMapRef"), "name"));
        }
    }
}

json_t *
dc_volumes_refs_needed(json_t *pod)
{
    json_t *set = json_object(), *spec = json_object_get(pod, "spec");
    need_containers(set, json_object_get(spec, "containers"));
    need_containers(set, json_object_get(spec, "initContainers"));
    size_t i, j;
    json_t *v, *src;
    json_array_foreach(json_object_get(spec, "volumes"), i, v)
    {
        need(set, "secret", jstr(json_object_get(v, "secret"), "secretName"));
        need(set, "configmap", jstr(json_object_get(v, "configMap"), "name"));
        json_array_foreach(json_object_get(json_object_get(v, "projected"), "sources"), j, src)
        {
            need(set, "secret", jstr(json_object_get(src, "secret"), "name"));
            need(set, "configmap", jstr(json_object_get(src, "configMap"), "name"));
        }
    }
    return set;
}
