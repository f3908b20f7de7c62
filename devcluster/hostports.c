/*
 * hostports.c: the forwarder (see hostports.h) and the controller pass that
 * feeds it.
 *
 * A connection is a pair of non-blocking sockets with one 64 KiB buffer
 * per direction. A side is read only while the buffer towards the other
 * side is empty, so memory per connection is bounded; an EOF is passed on
 * as shutdown(SHUT_WR) once the buffer is flushed (a half-close stays a
 * half-close: the other direction keeps flowing), and the pair is closed
 * when both directions are done or either side fails. A side that is not
 * being read (its EOF came, or its buffer waits for the other side) is
 * still watched for errors (LB_HANGUP), so a reset there closes the other
 * side at once instead of leaving both fds open until traffic happens to
 * hit the dead socket. The forwarder owns every open pair: stopping it
 * closes them.
 *
 * Services: a NodePort or LoadBalancer port without a nodePort gets a free
 * one from 30000-32767 (written into the Service, as the API server of a
 * real cluster allocates it); a LoadBalancer gets status.loadBalancer
 * ingress 127.0.0.1, so `kubectl get svc` shows where to connect.
 */
#include "hostports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controllers.h"
#include "event_loop.h"
#include "log.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define HP_BUF (64 * 1024)
#define HP_MAX_LISTENERS 256

typedef struct hp_dir {
    char data[HP_BUF];
    size_t len, off;
    bool eof;  /* the reading side said EOF */
    bool shut; /* passed on */
} hp_dir;

typedef struct hp_pair {
    int a, b; /* a: accepted client, b: upstream */
    bool connecting;
    hp_dir ab, ba;
    struct dc_hostports *owner;
    struct hp_pair *prev, *next; /* owner->pairs */
} hp_pair;

typedef struct hp_listener {
    int fd;
    int port;
    bool api;        /* the API server forward */
    json_t *targets; /* ["ip:port", ...] */
    unsigned next;
    struct dc_hostports *owner;
} hp_listener;

struct dc_hostports {
    lb_loop *loop;
    pthread_t thread;
    pthread_mutex_t mu;
    json_t *pending; /* table to apply in the loop thread, or NULL */
    atomic_bool stopping;
    hp_listener *ls[HP_MAX_LISTENERS];
    size_t nls;
    json_t *listening; /* guarded by mu */
    hp_pair *pairs;    /* open connections (loop thread) */
};

static void pair_update(lb_loop *loop, hp_pair *p);

static void
pair_close(lb_loop *loop, hp_pair *p)
{
    lb_loop_unwatch(loop, p->a);
    lb_loop_unwatch(loop, p->b);
    close(p->a);
    close(p->b);
    if (p->prev)
        p->prev->next = p->next;
    else
        p->owner->pairs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

/* Move what dir holds to fd; -1 on a fatal error. */
static int
flush_dir(hp_dir *d, int fd)
{
    while (d->off < d->len) {
        ssize_t n = send(fd, d->data + d->off, d->len - d->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -1;
        d->off += (size_t)n;
    }
    d->len = d->off = 0;
    if (d->eof && !d->shut) {
        shutdown(fd, SHUT_WR);
        d->shut = true;
    }
    return 0;
}

static int
fill_dir(hp_dir *d, int fd)
{
    ssize_t n;
    do {
        n = recv(fd, d->data, sizeof(d->data), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (n == 0)
        d->eof = true;
    d->len = (size_t)n;
    d->off = 0;
    return 0;
}

/* The socket has a pending error (a reset): nothing more will pass. */
static bool
sock_failed(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0;
}

static void
on_pair(lb_loop *loop, int fd, int events, void *arg)
{
    hp_pair *p = arg;
    if (p->connecting && fd == p->b) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(p->b, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            pair_close(loop, p);
            return;
        }
        p->connecting = false;
    }
    int rc = 0;
    if (events & LB_READABLE) {
        if (fd == p->a && p->ab.len == 0 && !p->ab.eof)
            rc = fill_dir(&p->ab, p->a);
        else if (fd == p->b && p->ba.len == 0 && !p->ba.eof && !p->connecting)
            rc = fill_dir(&p->ba, p->b);
        else if (sock_failed(fd))
            rc = -1; /* a reset on a side not being read */
    }
    if (rc == 0 && !p->connecting)
        rc = flush_dir(&p->ab, p->b);
    if (rc == 0)
        rc = flush_dir(&p->ba, p->a);
    if (rc != 0 || (p->ab.shut && p->ba.shut)) {
        pair_close(loop, p);
        return;
    }
    pair_update(loop, p);
}

static void
pair_update(lb_loop *loop, hp_pair *p)
{
    int ea = 0, eb = 0;
    if (!p->connecting) {
        if (p->ab.len == 0 && !p->ab.eof)
            ea |= LB_READABLE;
        if (p->ba.len == 0 && !p->ba.eof)
            eb |= LB_READABLE;
        if (p->ab.len > 0)
            eb |= LB_WRITABLE;
    } else {
        eb |= LB_WRITABLE;
    }
    if (p->ba.len > 0)
        ea |= LB_WRITABLE;
    /* Not read or written now: still learn of a reset. Not once our EOF
     * went to that side, since then the peer's own FIN is a hangup too and
     * would fire on every round while its data waits in the buffer. */
    if (!ea && !p->ba.shut)
        ea = LB_HANGUP;
    if (!eb && !p->ab.shut && !p->connecting)
        eb = LB_HANGUP;
    if (ea)
        lb_loop_watch(loop, p->a, ea, on_pair, p);
    else
        lb_loop_unwatch(loop, p->a);
    if (eb)
        lb_loop_watch(loop, p->b, eb, on_pair, p);
    else
        lb_loop_unwatch(loop, p->b);
}

static bool
parse_target(const char *t, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = t ? strrchr(t, ':') : NULL;
    if (!colon || (size_t)(colon - t) >= sizeof(host))
        return false;
    memcpy(host, t, (size_t)(colon - t));
    host[colon - t] = 0;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return false;
    sa->sin_port = htons((uint16_t)port);
    return true;
}

static void
on_accept(lb_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    hp_listener *l = arg;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        size_t n = json_array_size(l->targets);
        struct sockaddr_in sa;
        if (n == 0 ||
            !parse_target(json_string_value(json_array_get(l->targets, l->next++ % n)), &sa)) {
            close(c); /* no ready endpoint: refused, as kube-proxy would */
            continue;
        }
        int u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (u < 0) {
            close(c);
            continue;
        }
        int rc = connect(u, (struct sockaddr *)&sa, sizeof(sa));
        if (rc != 0 && errno != EINPROGRESS) {
            close(c);
            close(u);
            continue;
        }
        hp_pair *p = calloc(1, sizeof(*p));
        if (!p) {
            close(c);
            close(u);
            continue;
        }
        p->a = c;
        p->b = u;
        p->connecting = rc != 0;
        p->owner = l->owner;
        p->next = l->owner->pairs;
        if (p->next)
            p->next->prev = p;
        l->owner->pairs = p;
        pair_update(loop, p);
    }
}

static int
listen_on(const char *host, int port, bool freebind)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (freebind)
        setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void
apply_table(dc_hostports *h, json_t *table)
{
    /* close listeners no longer wanted, retarget the others */
    for (size_t i = 0; i < h->nls;) {
        hp_listener *l = h->ls[i];
        char key[16];
        snprintf(key, sizeof(key), "%d", l->port);
        json_t *t = l->api ? NULL : json_object_get(table, key);
        if (!l->api && !t) {
            lb_loop_unwatch(h->loop, l->fd);
            close(l->fd);
            json_decref(l->targets);
            lb_info("host port closed port=%d", l->port);
            free(l);
            h->ls[i] = h->ls[--h->nls];
            continue;
        }
        if (t) {
            json_decref(l->targets);
            l->targets = json_deep_copy(t);
        }
        i++;
    }
    const char *key;
    json_t *t;
    json_object_foreach(table, key, t)
    {
        int port = atoi(key);
        bool have = false;
        for (size_t i = 0; i < h->nls; i++)
            have = have || (!h->ls[i]->api && h->ls[i]->port == port);
        if (have || h->nls >= HP_MAX_LISTENERS || port <= 0 || port > 65535)
            continue;
        int fd = listen_on("127.0.0.1", port, false);
        if (fd < 0) {
            lb_warn("could not listen on host port port=%d error=\"%s\"", port, strerror(-fd));
            continue;
        }
        hp_listener *l = calloc(1, sizeof(*l));
        l->fd = fd;
        l->port = port;
        l->targets = json_deep_copy(t);
        l->owner = h;
        h->ls[h->nls++] = l;
        lb_loop_watch(h->loop, fd, LB_READABLE, on_accept, l);
        lb_info("host port listening address=127.0.0.1:%d", port);
    }
    json_t *ports = json_array();
    for (size_t i = 0; i < h->nls; i++)
        if (!h->ls[i]->api)
            json_array_append_new(ports, json_integer(h->ls[i]->port));
    pthread_mutex_lock(&h->mu);
    json_decref(h->listening);
    h->listening = ports;
    pthread_mutex_unlock(&h->mu);
}

static void
on_wakeup(lb_loop *loop, void *arg)
{
    dc_hostports *h = arg;
    if (atomic_load(&h->stopping)) {
        lb_loop_stop(loop);
        return;
    }
    pthread_mutex_lock(&h->mu);
    json_t *table = h->pending;
    h->pending = NULL;
    pthread_mutex_unlock(&h->mu);
    if (table) {
        apply_table(h, table);
        json_decref(table);
    }
}

static void *
run(void *arg)
{
    dc_hostports *h = arg;
    lb_loop_run(h->loop);
    return NULL;
}

int
dc_hostports_start(const char *bridge_host, int api_port, dc_hostports **out)
{
    dc_hostports *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->listening = json_array();
    int rc = lb_loop_new(&h->loop);
    if (rc) {
        free(h);
        return rc;
    }
    lb_loop_set_on_wakeup(h->loop, on_wakeup, h);
    if (bridge_host && api_port > 0) {
        int fd = listen_on(bridge_host, api_port, true);
        if (fd < 0) {
            lb_warn("could not forward the API server to pods address=%s:%d error=\"%s\"",
                    bridge_host, api_port, strerror(-fd));
        } else {
            hp_listener *l = calloc(1, sizeof(*l));
            char target[64];
            snprintf(target, sizeof(target), "127.0.0.1:%d", api_port);
            l->fd = fd;
            l->port = api_port;
            l->api = true;
            l->targets = json_pack("[s]", target);
            l->owner = h;
            h->ls[h->nls++] = l;
            lb_loop_watch(h->loop, fd, LB_READABLE, on_accept, l);
        }
    }
    if ((rc = pthread_create(&h->thread, NULL, run, h)) != 0) {
        lb_loop_free(h->loop);
        free(h);
        return -rc;
    }
    *out = h;
    return 0;
}

void
dc_hostports_set(dc_hostports *h, json_t *table)
{
    pthread_mutex_lock(&h->mu);
    json_decref(h->pending);
    h->pending = json_deep_copy(table);
    pthread_mutex_unlock(&h->mu);
    lb_loop_wakeup(h->loop);
}

json_t *
dc_hostports_listening(dc_hostports *h)
{
    pthread_mutex_lock(&h->mu);
    json_t *copy = json_deep_copy(h->listening);
    pthread_mutex_unlock(&h->mu);
    return copy;
}

void
dc_hostports_stop(dc_hostports *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, true);
    lb_loop_wakeup(h->loop);
    pthread_join(h->thread, NULL);
    /* the loop thread has ended: its connections and listeners close here */
    while (h->pairs)
        pair_close(h->loop, h->pairs);
    for (size_t i = 0; i < h->nls; i++) {
        close(h->ls[i]->fd);
        json_decref(h->ls[i]->targets);
        free(h->ls[i]);
    }
    lb_loop_free(h->loop);
    json_decref(h->pending);
    json_decref(h->listening);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ---- the controller side ---- */

static bool
port_free(int port)
{
    int fd = listen_on("127.0.0.1", port, false);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

void
dc_hostports_sync(dc_ctl *ctl, dc_ctl_snapshot *s)
{
    json_t *table = json_object(), *used = json_object();
    size_t i, j;
    json_t *svc, *sp;
    json_array_foreach(s->services, i, svc)
    {
        json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), j, sp)
        {
            json_t *np = json_object_get(sp, "nodePort");
            if (json_is_integer(np)) {
                char key[16];
                snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(np));
                json_object_set_new(used, key, json_true());
            }
        }
    }
    json_array_foreach(s->services, i, svc)
    {
        json_t *spec = json_object_get(svc, "spec");
        const char *type = dc_ctl_str(spec, "type");
        const char *ns = dc_ctl_meta(svc, "namespace"), *name = dc_ctl_meta(svc, "name");
        if (!type || !ns || !name ||
            (strcmp(type, "NodePort") != 0 && strcmp(type, "LoadBalancer") != 0))
            continue;
        char path[1200];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", ns, name);
        /* allocate missing node ports first; the table follows next pass */
        bool changed = false;
        json_t *copy = json_deep_copy(svc);
        json_array_foreach(json_object_get(json_object_get(copy, "spec"), "ports"), j, sp)
        {
            if (json_is_integer(json_object_get(sp, "nodePort")))
                continue;
            for (int port = 30000; port <= 32767; port++) {
                char key[16];
                snprintf(key, sizeof(key), "%d", port);
                if (json_object_get(used, key) || !port_free(port))
                    continue;
                json_object_set_new(sp, "nodePort", json_integer(port));
                json_object_set_new(used, key, json_true());
                changed = true;
                break;
            }
        }
        if (changed) {
            if (dc_ctl_put(ctl, path, copy) == 0)
                lb_info("node ports allocated namespace=%s service=%s", ns, name);
            json_decref(copy);
            continue;
        }
        json_decref(copy);
        if (strcmp(type, "LoadBalancer") == 0) {
            json_t *status = json_deep_copy(json_object_get(svc, "status"));
            if (!status)
                status = json_object();
            json_object_set_new(
                status, "loadBalancer",
                json_pack("{s:[{s:s,s:s}]}", "ingress", "ip", "127.0.0.1", "ipMode", "VIP"));
            dc_ctl_put_status(ctl, path, svc, status);
            json_decref(status);
        }
        json_t *ep = NULL, *e;
        size_t k;
        json_array_foreach(s->endpoints, k, e)
        {
            const char *en = dc_ctl_meta(e, "name"), *ens = dc_ctl_meta(e, "namespace");
            if (en && ens && strcmp(en, name) == 0 && strcmp(ens, ns) == 0)
                ep = e;
        }
        json_array_foreach(json_object_get(spec, "ports"), j, sp)
        {
            json_t *np = json_object_get(sp, "nodePort");
            const char *proto = dc_ctl_str(sp, "protocol");
            if (!json_is_integer(np) || (proto && strcmp(proto, "TCP") != 0))
                continue;
            const char *pname = dc_ctl_str(sp, "name");
            json_t *targets = json_array();
            size_t a, b;
            json_t *sub, *addr, *epp;
            json_array_foreach(json_object_get(ep, "subsets"), a, sub)
            {
                int tport = -1;
                json_array_foreach(json_object_get(sub, "ports"), b, epp)
                {
                    const char *en = dc_ctl_str(epp, "name");
                    if (!pname || (en && strcmp(en, pname) == 0) ||
                        json_array_size(json_object_get(sub, "ports")) == 1)
                        tport = (int)json_integer_value(json_object_get(epp, "port"));
                }
                if (tport <= 0)
                    continue;
                json_array_foreach(json_object_get(sub, "addresses"), b, addr)
                {
                    char t[80];
                    snprintf(t, sizeof(t), "%s:%d", dc_ctl_str(addr, "ip"), tport);
                    json_array_append_new(targets, json_string(t));
                }
            }
            char key[16];
            snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(np));
            json_object_set_new(table, key, targets);
        }
    }
    if (ctl->hostports)
        dc_hostports_set(ctl->hostports, table);
    json_decref(table);
    json_decref(used);
}
