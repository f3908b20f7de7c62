/*
 * leader.c: Lease-based leader election (see leader.h).
 *
 * State kept between rounds: the last record seen (holder + renewTime +
 * resourceVersion) and the local monotonic time it was first seen. A Lease
 * is considered expired when that record has sat unchanged for
 * leaseDurationSeconds of our own clock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "kube.h"
#include "leader.h"
#include "log.h"

struct ctl_leader {
    ctl_leader_config config; /* strings owned */
    ctl_kube *kube;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool leading;
    char observed[512];  /* holder|renewTime of the last record seen */
    int64_t observed_at; /* when it was first seen (mono ms) */
    int64_t last_renew;  /* our last successful take or renew (mono ms) */
};

static void
micro_time(char *buf, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06ldZ", base, (long)tv.tv_usec);
}

static void
lease_path(ctl_leader *l, char *buf, size_t cap, bool collection)
{
    ctl_kube_path(buf, cap, "coordination.k8s.io/v1", l->config.ns, "leases",
                  collection ? NULL : l->config.name, NULL);
}

/* One round: take or renew. true if we hold the Lease now. */
static bool
try_acquire_or_renew(ctl_leader *l)
{
    char path[1024], now[64];
    lease_path(l, path, sizeof(path), false);
    micro_time(now, sizeof(now));
    int lease_s = (int)((l->config.lease_ms + 999) / 1000);
    json_t *lease = NULL;
    int rc = ctl_kube_get(l->kube, path, &lease);
    if (rc == LB_ENOTFOUND) {
        json_t *obj =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
                      "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", l->config.name,
                      "namespace", l->config.ns, "spec", "holderIdentity", l->config.identity,
                      "leaseDurationSeconds", lease_s, "acquireTime", now, "renewTime", now,
                      "leaseTransitions", 0);
        char coll[1024];
        lease_path(l, coll, sizeof(coll), true);
        rc = obj ? ctl_kube_create(l->kube, coll, obj, NULL) : -ENOMEM;
        json_decref(obj);
        if (rc == 0)
            return true;
        if (rc != LB_EEXIST)
            lb_warn("could not create lease=%s/%s: %s", l->config.ns, l->config.name,
                    ctl_kube_error(l->kube));
        return false;
    }
    if (rc) {
        lb_warn("could not read lease=%s/%s: %s", l->config.ns, l->config.name,
                ctl_kube_error(l->kube));
        return false;
    }
    json_t *spec = json_object_get(lease, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(lease, "spec", spec);
    }
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    const char *renew = json_string_value(json_object_get(spec, "renewTime"));
    char record[512];
    snprintf(record, sizeof(record), "%s|%s", holder ? holder : "", renew ? renew : "");
    int64_t mono = lb_mono_ms();
    if (strcmp(record, l->observed) != 0) {
        snprintf(l->observed, sizeof(l->observed), "%s", record);
        l->observed_at = mono;
    }
    bool mine = holder && strcmp(holder, l->config.identity) == 0;
    char previous[256];
    snprintf(previous, sizeof(previous), "%s", holder && *holder ? holder : "none");
    json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    if (dur <= 0)
        dur = lease_s;
    if (!mine && holder && *holder && l->observed_at + dur * 1000 > mono) {
        json_decref(lease);
        return false; /* someone else holds a live lease */
    }
    if (!mine) {
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_int_t tr = json_integer_value(json_object_get(spec, "leaseTransitions"));
        json_object_set_new(spec, "leaseTransitions", json_integer(tr + 1));
        json_object_set_new(spec, "holderIdentity", json_string(l->config.identity));
    }
    json_object_set_new(spec, "renewTime", json_string(now));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(lease_s));
    rc = ctl_kube_update(l->kube, path, lease, NULL);
    json_decref(lease);
    if (rc) {
        if (rc != LB_ECONFLICT)
            lb_warn("could not update lease=%s/%s: %s", l->config.ns, l->config.name,
                    ctl_kube_error(l->kube));
        return false;
    }
    if (!mine)
        lb_info("took lease=%s/%s identity=%s previous=%s", l->config.ns, l->config.name,
                l->config.identity, previous);
    return true;
}

static void
release(ctl_leader *l)
{
    char path[1024], now[64];
    lease_path(l, path, sizeof(path), false);
    micro_time(now, sizeof(now));
    json_t *lease = NULL;
    if (ctl_kube_get(l->kube, path, &lease) != 0)
        return;
    json_t *spec = json_object_get(lease, "spec");
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    if (holder && strcmp(holder, l->config.identity) == 0) {
        json_object_set_new(spec, "holderIdentity", json_string(""));
        json_object_set_new(spec, "renewTime", json_string(now));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
        if (ctl_kube_update(l->kube, path, lease, NULL) == 0)
            lb_info("released lease=%s/%s", l->config.ns, l->config.name);
    }
    json_decref(lease);
}

static void
nap(ctl_leader *l, int64_t ms)
{
    while (ms > 0 && !atomic_load(&l->stop)) {
        usleep(50 * 1000);
        ms -= 50;
    }
}

static void *
run(void *arg)
{
    ctl_leader *l = arg;
    while (!atomic_load(&l->stop)) {
        bool held = try_acquire_or_renew(l);
        int64_t mono = lb_mono_ms();
        if (held) {
            l->last_renew = mono;
            if (!atomic_load(&l->leading)) {
                atomic_store(&l->leading, true);
                if (l->config.on_started)
                    l->config.on_started(l->config.arg);
            }
        } else if (atomic_load(&l->leading) &&
                   mono - l->last_renew >= l->config.renew_deadline_ms) {
            lb_error("lost lease=%s/%s: not renewed for %lldms", l->config.ns, l->config.name,
                     (long long)(mono - l->last_renew));
            atomic_store(&l->leading, false);
            if (l->config.on_lost)
                l->config.on_lost(l->config.arg);
        }
        nap(l, l->config.retry_ms);
    }
    if (atomic_load(&l->leading))
        release(l);
    return NULL;
}

int
ctl_leader_start(const ctl_kubeconfig *kc, const ctl_leader_config *config, ctl_leader **out)
{
    ctl_leader *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->config = *config;
    if (l->config.lease_ms <= 0)
        l->config.lease_ms = 15000;
    if (l->config.renew_deadline_ms <= 0)
        l->config.renew_deadline_ms = 10000;
    if (l->config.retry_ms <= 0)
        l->config.retry_ms = 2000;
    l->config.ns = strdup(config->ns);
    l->config.name = strdup(config->name);
    l->config.identity = strdup(config->identity);
    int rc = (!l->config.ns || !l->config.name || !l->config.identity) ? -ENOMEM : 0;
    if (rc == 0 && (rc = ctl_kube_new(kc, &l->kube)) == 0)
        ctl_kube_set_immune(l->kube);
    if (rc == 0)
        rc = -pthread_create(&l->thread, NULL, run, l);
    if (rc) {
        ctl_kube_free(l->kube);
        free((char *)l->config.ns);
        free((char *)l->config.name);
        free((char *)l->config.identity);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

bool
ctl_leader_is_leader(ctl_leader *l)
{
    return l && atomic_load(&l->leading);
}

void
ctl_leader_stop(ctl_leader *l)
{
    if (!l)
        return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    ctl_kube_free(l->kube);
    free((char *)l->config.ns);
    free((char *)l->config.name);
    free((char *)l->config.identity);
    free(l);
}
