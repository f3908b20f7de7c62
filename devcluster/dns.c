/*
 * dns.c: cluster DNS as one hosts file per namespace.
 *
 * Every container of a pod in namespace NS has <node>/hosts/NS bind-mounted
 * at /etc/hosts (podman.c); glibc and musl read /etc/hosts on every lookup,
 * so a rewrite is seen at once, with no resolver, no port 53 and nothing
 * shared between two devclusters on one machine. The file names:
 *   SERVICE.NAMESPACE.svc.cluster.local (and .svc, and SERVICE.NAMESPACE;
 *     plain SERVICE within its own namespace) -> the addresses in the
 *     Service's Endpoints (there are no virtual service IPs on one machine:
 *     a client connects to the targetPort of a pod directly);
 *   POD.SUBDOMAIN.NAMESPACE.svc.cluster.local for every pod with hostname
 *     and subdomain (a StatefulSet's pods), as soon as it has an address;
 *   each pod's hostname within its namespace;
 *   kubernetes.default.svc.cluster.local -> the API server's bridge address.
 * Names outside the cluster go to the resolver podman configures (the
 * host's). The file is rewritten in place (same inode: a bind mount of a
 * file follows the inode, so rename() would leave pods on the old one);
 * a reader may see a half-written file for the duration of one write(2).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "controllers.h"
#include "log.h"
#include "volumes.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

const char *
dc_dns_header(void)
{
    return "# cluster DNS of devcluster, rewritten by its node agent\n"
           "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n";
}

static void
names(lb_buf *b, const char *ip, const char *name, const char *ns, const char *file_ns)
{
    lb_buf_printf(b, "%s\t%s.%s.svc.cluster.local %s.%s.svc %s.%s", ip, name, ns, name, ns, name,
                  ns);
    if (strcmp(ns, file_ns) == 0)
        lb_buf_printf(b, " %s", name);
    lb_buf_append_str(b, "\n");
}

void
dc_dns_render(const char *file_ns, const char *api_host, dc_ctl_snapshot *s, lb_buf *b)
{
    lb_buf_append_str(b, dc_dns_header());
    if (api_host)
        names(b, api_host, "kubernetes", "default", file_ns);
    size_t i, j, k;
    json_t *ep, *sub, *addr;
    json_array_foreach(s->endpoints, i, ep)
    {
        const char *name = dc_ctl_meta(ep, "name"), *ns = dc_ctl_meta(ep, "namespace");
        if (!name || !ns || (strcmp(name, "kubernetes") == 0 && strcmp(ns, "default") == 0))
            continue;
        json_array_foreach(json_object_get(ep, "subsets"), j, sub)
        {
            json_array_foreach(json_object_get(sub, "addresses"), k, addr)
            {
                const char *ip = dc_ctl_str(addr, "ip");
                if (ip)
                    names(b, ip, name, ns, file_ns);
            }
        }
    }
    json_t *pod;
    json_array_foreach(s->pods, i, pod)
    {
        const char *ns = dc_ctl_meta(pod, "namespace");
        const char *ip = dc_ctl_str(json_object_get(pod, "status"), "podIP");
        json_t *spec = json_object_get(pod, "spec");
        if (!ns || !ip || !*ip || dc_ctl_meta(pod, "deletionTimestamp") ||
            json_is_true(json_object_get(spec, "hostNetwork")))
            continue;
        const char *host = dc_ctl_str(spec, "hostname");
        const char *subd = dc_ctl_str(spec, "subdomain");
        if (!host)
            host = dc_ctl_meta(pod, "name");
        if (subd && *subd) {
            char qualified[600];
            snprintf(qualified, sizeof(qualified), "%s.%s", host, subd);
            names(b, ip, qualified, ns, file_ns);
        }
        if (strcmp(ns, file_ns) == 0 && host)
            lb_buf_printf(b, "%s\t%s\n", ip, host);
    }
}

/* Rewrite path in place with text unless it already holds it. */
static int
rewrite_in_place(const char *path, const lb_buf *text)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    lb_buf old = LB_BUF_INIT;
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        lb_buf_append(&old, chunk, (size_t)n);
    int rc = 0;
    if (old.len != text->len || (text->len && memcmp(old.data, text->data, text->len) != 0)) {
        if (pwrite(fd, text->data, text->len, 0) != (ssize_t)text->len ||
            ftruncate(fd, (off_t)text->len) != 0)
            rc = -errno;
    }
    lb_buf_free(&old);
    close(fd);
    return rc;
}

void
dc_dns_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/hosts", ctl->node_dir);
    dc_mkdirs(dir, 0755);
    json_t *namespaces = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(s->pods, i, o)
    {
        if (dc_ctl_meta(o, "namespace"))
            json_object_set_new(namespaces, dc_ctl_meta(o, "namespace"), json_true());
    }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                json_object_set_new(namespaces, e->d_name, json_true());
        closedir(d);
    }
    const char *ns;
    json_t *v;
    json_object_foreach(namespaces, ns, v)
    {
        if (strchr(ns, '/') || strstr(ns, ".."))
            continue;
        lb_buf text = LB_BUF_INIT;
        dc_dns_render(ns, ctl->api_host, s, &text);
        char path[2400];
        snprintf(path, sizeof(path), "%s/%s", dir, ns);
        int rc = rewrite_in_place(path, &text);
        if (rc)
            lb_warn("could not write hosts file path=%s error=\"%s\"", path, strerror(-rc));
        lb_buf_free(&text);
    }
    json_decref(namespaces);
}
