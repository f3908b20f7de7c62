/*
 * daemon.c: the safekeeper's loop, timelines registry and job queue.
 *
 * Group commit happens in the loop's before-sleep hook: after a round of
 * socket events has appended WAL to any number of timelines, each dirty
 * timeline is fsynced once, and only then are flush positions reported to
 * the computes, published to peers, and made visible to walsenders.
 */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"

/* How long an HTTP thread waits for the loop to take its job before it
 * answers 503: a loop stuck in a long step must not pin every HTTP thread. */
#define JOB_QUEUE_WAIT_MS 5000

struct sk_job {
    int (*fn)(sk_daemon *sk, void *arg);
    void *arg;
    int rc;
    bool started; /* the loop has taken it: it runs to the end */
    bool done;
    sk_job *next;
};

int
sk_peer_index(const sk_daemon *sk, const char *name)
{
    for (int i = 0; i < sk->npeers; i++)
        if (strcmp(sk->peers[i].name, name) == 0)
            return i;
    return -1;
}

int
sk_peer_by_url(const sk_daemon *sk, const char *url)
{
    if (!url || strncmp(url, "http://", 7) != 0)
        return -1;
    char text[300];
    snprintf(text, sizeof(text), "%s", url + 7);
    size_t n = strlen(text);
    if (n > 0 && text[n - 1] == '/')
        text[--n] = '\0';
    lb_config_addr a;
    if (strchr(text, '/') || lb_hostport_parse(text, &a) != 0)
        return -1;
    for (int i = 0; i < sk->npeers; i++)
        if (sk->peers[i].http.port && sk->peers[i].http.port == a.port &&
            strcmp(sk->peers[i].http.host, a.host) == 0)
            return i;
    int own = sk->http ? lb_http_server_port(sk->http) : sk->conf.listen_http.port;
    if (a.port == own && strcmp(a.host, sk->conf.listen_http.host) == 0)
        return SK_PEER_SELF;
    return -1;
}

sk_tl_entry *
sk_find(sk_daemon *sk, const char *tenant_id, const char *timeline_id)
{
    for (int i = 0; i < sk->ntimelines; i++)
        if (strcmp(sk->timelines[i].tenant_id, tenant_id) == 0 &&
            strcmp(sk->timelines[i].timeline_id, timeline_id) == 0)
            return &sk->timelines[i];
    return NULL;
}

static void
publish(sk_daemon *sk)
{
    pthread_mutex_lock(&sk->snap_lock);
    for (int i = 0; i < sk->ntimelines; i++) {
        sk_timeline *tl = sk->timelines[i].tl;
        sk_tl_snapshot *s = &sk->snap[i];
        const sk_acceptor_state *st = sk_timeline_state(tl);
        bool moved = strcmp(s->tenant_id, st->tenant_id) != 0 ||
                     strcmp(s->timeline_id, st->timeline_id) != 0;
        if (moved) { /* a new timeline in this slot: look its series up once */
            strcpy(s->tenant_id, st->tenant_id);
            strcpy(s->timeline_id, st->timeline_id);
            s->flush_gauge = s->commit_gauge = s->term_gauge = NULL;
            lb_gauge_labels(sk->flush_lsn_gauge, &s->flush_gauge, s->tenant_id, s->timeline_id,
                            NULL);
            lb_gauge_labels(sk->commit_lsn_gauge, &s->commit_gauge, s->tenant_id, s->timeline_id,
                            NULL);
            lb_gauge_labels(sk->term_gauge, &s->term_gauge, s->tenant_id, s->timeline_id, NULL);
        }
        if (moved || s->term != st->term || s->last_log_term != sk_last_log_term(st) ||
            s->flush_lsn != sk_timeline_flush_lsn(tl) ||
            s->commit_lsn != sk_timeline_commit_lsn(tl)) {
            s->term = st->term;
            s->last_log_term = sk_last_log_term(st);
            s->flush_lsn = sk_timeline_flush_lsn(tl);
            s->commit_lsn = sk_timeline_commit_lsn(tl);
            if (s->flush_gauge)
                lb_gauge_set(s->flush_gauge, (double)s->flush_lsn);
            if (s->commit_gauge)
                lb_gauge_set(s->commit_gauge, (double)s->commit_lsn);
            if (s->term_gauge)
                lb_gauge_set(s->term_gauge, (double)s->term);
        }
    }
    sk->nsnap = sk->ntimelines;
    pthread_mutex_unlock(&sk->snap_lock);
    if (sk->peer_sync)
        sk_peers_publish(sk->peer_sync);
}

void
sk_timeline_changed(sk_daemon *sk, sk_tl_entry *e)
{
    if (e->recv)
        sk_receiver_poke(e->recv);
    publish(sk);
    if (sk->walsender)
        sk_walsender_notify(sk->walsender);
}

int
sk_add_timeline(sk_daemon *sk, sk_timeline *tl)
{
    if (sk->ntimelines == SK_MAX_TIMELINES)
        return -ENOSPC;
    const sk_acceptor_state *st = sk_timeline_state(tl);
    sk_tl_entry *e = &sk->timelines[sk->ntimelines];
    memset(e, 0, sizeof(*e));
    e->tl = tl;
    strcpy(e->tenant_id, st->tenant_id);
    strcpy(e->timeline_id, st->timeline_id);
    sk_timeline_set_quorum(tl, sk->npeers + 1);
    sk_timeline_set_consumer_ttl(tl, sk->conf.consumer_ttl_ms);
    int rc = sk_receiver_new(sk->loop, tl, sk->conf.id, &e->recv);
    if (rc)
        return rc;
    sk_receiver_set_password(e->recv, sk->compute_password);
    sk->ntimelines++;
    if (sk->peer_sync)
        sk_peers_forget(sk->peer_sync);
    sk_timeline_changed(sk, e);
    return 0;
}

int
sk_remove_timeline(sk_daemon *sk, const char *tenant_id, const char *timeline_id)
{
    sk_tl_entry *e = sk_find(sk, tenant_id, timeline_id);
    if (!e)
        return LB_ENOTFOUND;
    sk_receiver_free(e->recv);
    sk_timeline_close(e->tl);
    int idx = (int)(e - sk->timelines);
    sk->timelines[idx] = sk->timelines[--sk->ntimelines];
    if (sk->peer_sync)
        sk_peers_forget(sk->peer_sync);
    int rc = sk_timeline_remove_dir(sk->conf.data_dir, tenant_id, timeline_id);
    publish(sk);
    return rc;
}

/* ---- loop hooks ------------------------------------------------------------ */

static void
before_sleep(lb_loop *loop, void *arg)
{
    (void)loop;
    sk_daemon *sk = arg;
    bool progressed = false;
    for (int i = 0; i < sk->ntimelines; i++) {
        sk_tl_entry *e = &sk->timelines[i];
        if (sk_receiver_dirty(e->recv)) {
            lb_lsn before = sk_timeline_flush_lsn(e->tl);
            double t0 = lb_mono_s();
            int rc = sk_timeline_sync(e->tl);
            lb_histogram_observe(sk->fsync_seconds, lb_mono_s() - t0);
            if (rc == 0) {
                lb_counter_add(sk->wal_bytes, (double)(sk_timeline_flush_lsn(e->tl) - before));
                progressed = true;
            } else {
                sk_receiver_poke(e->recv); /* a broken timeline disconnects */
            }
        }
        sk_receiver_report(e->recv);
    }
    if (progressed) {
        publish(sk);
        if (sk->walsender)
            sk_walsender_notify(sk->walsender);
    }
}

static int64_t
tick(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    sk_daemon *sk = arg;
    for (int i = 0; i < sk->ntimelines; i++)
        sk_receiver_poke(sk->timelines[i].recv);
    return 100;
}

static void
run_jobs(lb_loop *loop, void *arg)
{
    (void)loop;
    sk_daemon *sk = arg;
    /* Taken and marked started in one step: a waiter that gives up
     * (sk_run_on_loop) withdraws only a job still in the queue. */
    pthread_mutex_lock(&sk->jobs_lock);
    sk_job *list = sk->jobs;
    sk->jobs = NULL;
    for (sk_job *j = list; j; j = j->next)
        j->started = true;
    pthread_mutex_unlock(&sk->jobs_lock);
    /* Run in submission order (the list is LIFO). */
    sk_job *rev = NULL;
    while (list) {
        sk_job *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (sk_job *j = rev; j;) {
        sk_job *next = j->next;
        int rc = j->fn(sk, j->arg);
        pthread_mutex_lock(&sk->jobs_lock);
        j->rc = rc;
        j->done = true;
        pthread_cond_broadcast(&sk->jobs_done);
        pthread_mutex_unlock(&sk->jobs_lock);
        j = next;
    }
}

int
sk_run_on_loop(sk_daemon *sk, int (*fn)(sk_daemon *sk, void *arg), void *arg)
{
    sk_job job = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&sk->jobs_lock);
    if (!sk->loop_running) {
        pthread_mutex_unlock(&sk->jobs_lock);
        return -ESHUTDOWN;
    }
    job.next = sk->jobs;
    sk->jobs = &job;
    pthread_mutex_unlock(&sk->jobs_lock);
    lb_loop_wakeup(sk->loop);
    struct timespec deadline = lb_mono_deadline(JOB_QUEUE_WAIT_MS);
    pthread_mutex_lock(&sk->jobs_lock);
    while (!job.done) {
        if (job.started) {
            pthread_cond_wait(&sk->jobs_done, &sk->jobs_lock);
            continue;
        }
        if (pthread_cond_timedwait(&sk->jobs_done, &sk->jobs_lock, &deadline) == ETIMEDOUT &&
            !job.started && !job.done) {
            /* Not taken yet: withdraw it (the loop never sees it) and say busy. */
            for (sk_job **p = &sk->jobs; *p; p = &(*p)->next)
                if (*p == &job) {
                    *p = job.next;
                    break;
                }
            pthread_mutex_unlock(&sk->jobs_lock);
            lb_warn("event loop busy: request not taken within %d ms", JOB_QUEUE_WAIT_MS);
            return -EBUSY;
        }
    }
    pthread_mutex_unlock(&sk->jobs_lock);
    return job.rc;
}

/* The compute password, read at start and on SIGHUP. 0 or -errno. */
static int
load_compute_password(sk_daemon *sk)
{
    if (!sk->conf.compute_password_file || !sk->conf.compute_password_file[0])
        return 0;
    lb_buf b = LB_BUF_INIT;
    int rc = lb_read_file(sk->conf.compute_password_file, &b);
    if (rc == 0) {
        while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
            b.len--;
        if (b.len == 0 || b.len >= sizeof(sk->compute_password) || memchr(b.data, 0, b.len))
            rc = LB_EPARSE;
        else {
            memcpy(sk->compute_password, b.data, b.len);
            sk->compute_password[b.len] = '\0';
        }
    }
    if (b.data)
        explicit_bzero(b.data, b.len);
    lb_buf_free(&b);
    if (rc)
        lb_error("could not read compute_password_file \"%s\": %s", sk->conf.compute_password_file,
                 lb_strerror(rc));
    return rc;
}

/* SIGHUP: re-read keys and credentials; what fails to load keeps its old value. */
static void
on_reload_signal(lb_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    sk_daemon *sk = arg;
    lb_info("received SIGHUP, reloading keys and credentials");
    lb_auth_keys_reload(sk->keys);
    if (sk->token)
        lb_auth_token_reload(sk->token);
    load_compute_password(sk);
}

static void
on_stop_signal(lb_loop *loop, int signo, void *arg)
{
    (void)arg;
    lb_info("received signal %d, shutting down", signo);
    lb_loop_stop(loop);
}

/* ---- startup ----------------------------------------------------------------- */

static int
load_timelines(sk_daemon *sk)
{
    DIR *tenants = opendir(sk->conf.data_dir);
    if (!tenants)
        return -errno;
    struct dirent *t;
    int rc = 0;
    while (rc == 0 && (t = readdir(tenants))) {
        if (!sk_id_valid(t->d_name))
            continue;
        char tdir[PATH_MAX];
        snprintf(tdir, sizeof(tdir), "%s/%s", sk->conf.data_dir, t->d_name);
        DIR *tls = opendir(tdir);
        if (!tls)
            continue;
        struct dirent *l;
        while (rc == 0 && (l = readdir(tls))) {
            if (!sk_id_valid(l->d_name))
                continue;
            char dir[PATH_MAX + 300];
            snprintf(dir, sizeof(dir), "%s/%s", tdir, l->d_name);
            sk_timeline *tl;
            int orc = sk_timeline_open(dir, &tl);
            if (orc) {
                /* One damaged timeline must not take the others down. */
                lb_error("timeline \"%s\" not loaded: %s", dir, lb_strerror(orc));
                continue;
            }
            rc = sk_add_timeline(sk, tl);
        }
        closedir(tls);
    }
    closedir(tenants);
    return rc;
}

static int
parse_peers(sk_daemon *sk)
{
    for (size_t i = 0; i < sk->conf.peers.count; i++) {
        const char *item = sk->conf.peers.items[i];
        const char *eq = strchr(item, '=');
        sk_peer p;
        memset(&p, 0, sizeof(p));
        if (!eq || eq == item || (size_t)(eq - item) >= sizeof(p.name) ||
            lb_hostport_parse(eq + 1, &p.addr) != 0 || p.addr.port == 0) {
            lb_error("invalid peer \"%s\": expected name=host:port, the peer's listen_pg", item);
            return LB_EBADCONFIG;
        }
        memcpy(p.name, item, (size_t)(eq - item));
        if (strcmp(p.name, sk->conf.id) == 0) {
            lb_error("peer \"%s\" has this safekeeper's own name", p.name);
            return LB_EBADCONFIG;
        }
        if (sk_peer_index(sk, p.name) >= 0) {
            lb_error("peer \"%s\" is named twice", p.name);
            return LB_EBADCONFIG;
        }
        if (sk->npeers == SK_MAX_PEERS) {
            lb_error("at most %d peers", SK_MAX_PEERS);
            return LB_EBADCONFIG;
        }
        sk->peers[sk->npeers++] = p;
    }
    for (size_t i = 0; i < sk->conf.peers_http.count; i++) {
        const char *item = sk->conf.peers_http.items[i];
        const char *eq = strchr(item, '=');
        char name[64];
        lb_config_addr a;
        if (!eq || eq == item || (size_t)(eq - item) >= sizeof(name) ||
            lb_hostport_parse(eq + 1, &a) != 0 || a.port == 0) {
            lb_error("invalid peers_http entry \"%s\": expected name=host:port, the peer's "
                     "listen_http",
                     item);
            return LB_EBADCONFIG;
        }
        memcpy(name, item, (size_t)(eq - item));
        name[eq - item] = '\0';
        int idx = sk_peer_index(sk, name);
        if (idx < 0) {
            lb_error("peers_http names \"%s\", which is not in peers", name);
            return LB_EBADCONFIG;
        }
        sk->peers[idx].http = a;
    }
    return 0;
}

int
sk_daemon_init(sk_daemon *sk)
{
    int rc;
    pthread_mutex_init(&sk->jobs_lock, NULL);
    lb_cond_init_mono(&sk->jobs_done);
    pthread_mutex_init(&sk->snap_lock, NULL);
    if ((rc = parse_peers(sk)) != 0)
        return rc;
    if ((rc = lb_auth_keys_load(sk->conf.auth_public_keys, &sk->keys)) != 0) {
        lb_error("could not load auth_public_keys \"%s\": %s", sk->conf.auth_public_keys,
                 lb_strerror(rc));
        return rc;
    }
    if (sk->conf.auth_token_file && sk->conf.auth_token_file[0] &&
        (rc = lb_auth_token_load(sk->conf.auth_token_file, &sk->token)) != 0)
        return rc;
    if (!sk->token && sk->npeers > 0)
        lb_warn("no auth_token_file: peers will refuse this safekeeper's position stream");
    if ((rc = load_compute_password(sk)) != 0)
        return rc;
    if ((rc = lb_mkdir_p(sk->conf.data_dir, 0700)) != 0) {
        lb_error("could not create data directory \"%s\": %s", sk->conf.data_dir, lb_strerror(rc));
        return rc;
    }
    if ((rc = lb_metrics_new(&sk->metrics)) != 0)
        return rc;
    static const double fsync_buckets[] = {0.0001, 0.0005, 0.001, 0.002, 0.005,
                                           0.01,   0.025,  0.05,  0.1,   0.5};
    if ((rc = lb_metrics_histogram(sk->metrics, "safekeeper_fsync_seconds",
                                   "Duration of a group-commit fsync of a timeline's WAL.", NULL,
                                   fsync_buckets, 10, &sk->fsync_seconds)) != 0 ||
        (rc = lb_metrics_counter(sk->metrics, "safekeeper_wal_flushed_bytes_total",
                                 "WAL bytes made durable.", NULL, &sk->wal_bytes)) != 0 ||
        (rc = lb_metrics_counter(sk->metrics, "safekeeper_wal_offloaded_bytes_total",
                                 "WAL bytes uploaded to object storage.", NULL,
                                 &sk->offloaded_bytes)) != 0 ||
        (rc = lb_metrics_gauge(sk->metrics, "safekeeper_flush_lsn",
                               "End of the WAL fsynced, per timeline.", "tenant_id,timeline_id",
                               &sk->flush_lsn_gauge)) != 0 ||
        (rc = lb_metrics_gauge(sk->metrics, "safekeeper_commit_lsn",
                               "Highest LSN flushed on a majority in the current term.",
                               "tenant_id,timeline_id", &sk->commit_lsn_gauge)) != 0 ||
        (rc = lb_metrics_gauge(sk->metrics, "safekeeper_term", "Highest term promised.",
                               "tenant_id,timeline_id", &sk->term_gauge)) != 0)
        return rc;
    if ((rc = lb_loop_new(&sk->loop)) != 0)
        return rc;
    /* Before any thread exists, so every thread inherits the blocked mask
     * and the signals reach only the loop. */
    signal(SIGPIPE, SIG_IGN);
    if ((rc = lb_loop_watch_signal(sk->loop, SIGTERM, on_stop_signal, NULL)) != 0 ||
        (rc = lb_loop_watch_signal(sk->loop, SIGINT, on_stop_signal, NULL)) != 0 ||
        (rc = lb_loop_watch_signal(sk->loop, SIGHUP, on_reload_signal, sk)) != 0)
        return rc;
    lb_loop_set_before_sleep(sk->loop, before_sleep, sk);
    lb_loop_set_on_wakeup(sk->loop, run_jobs, sk);
    if ((rc = lb_loop_add_timer(sk->loop, 100, tick, sk, NULL)) != 0)
        return rc;
    if ((rc = load_timelines(sk)) != 0)
        return rc;

    lb_http_server_config hc = {
        .address = sk->conf.listen_http.host,
        .port = sk->conf.listen_http.port,
        .threads = (unsigned)sk->conf.http_threads,
        .max_body = 1 << 20,
        .max_connections = (unsigned)sk->conf.http_max_connections,
        .metrics = sk->metrics,
    };
    if ((rc = lb_http_server_new(&hc, &sk->http)) != 0 || (rc = sk_http_routes(sk)) != 0 ||
        (rc = lb_http_server_set_auth(sk->http, sk->keys)) != 0)
        return rc;
    sk->loop_running = true;
    if ((rc = lb_http_server_start(sk->http)) != 0) {
        lb_error("could not listen on %s:%d: %s", hc.address, hc.port, lb_strerror(rc));
        return rc;
    }
    if ((rc = sk_walsender_start(sk, &sk->walsender)) != 0)
        return rc;
    if ((rc = sk_peers_start(sk, &sk->peer_sync)) != 0)
        return rc;
    if ((rc = sk_offload_start(sk, &sk->offload)) != 0)
        return rc;
    lb_info("safekeeper started id=%s http=%s:%d pg=%s:%d timelines=%d peers=%d", sk->conf.id,
            hc.address, lb_http_server_port(sk->http), sk->conf.listen_pg.host,
            sk_walsender_port(sk->walsender), sk->ntimelines, sk->npeers);
    return 0;
}

void
sk_daemon_shutdown(sk_daemon *sk)
{
    /* No new jobs; fail the waiting ones so HTTP threads can finish. */
    pthread_mutex_lock(&sk->jobs_lock);
    sk->loop_running = false;
    for (sk_job *j = sk->jobs; j; j = j->next) {
        j->rc = -ESHUTDOWN;
        j->done = true;
    }
    sk->jobs = NULL;
    pthread_cond_broadcast(&sk->jobs_done);
    pthread_mutex_unlock(&sk->jobs_lock);

    if (sk->http)
        lb_http_server_free(sk->http);
    if (sk->offload)
        sk_offload_stop(sk->offload);
    if (sk->peer_sync)
        sk_peers_stop(sk->peer_sync);
    if (sk->walsender)
        sk_walsender_stop(sk->walsender);
    for (int i = 0; i < sk->ntimelines; i++) {
        sk_receiver_free(sk->timelines[i].recv);
        sk_timeline_sync(sk->timelines[i].tl);
        sk_timeline_close(sk->timelines[i].tl);
    }
    sk->ntimelines = 0;
    lb_loop_free(sk->loop);
    lb_metrics_free(sk->metrics);
    lb_auth_keys_free(sk->keys);
    lb_auth_token_free(sk->token);
    explicit_bzero(sk->compute_password, sizeof(sk->compute_password));
}
