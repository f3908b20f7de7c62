/*
 * peers.c: tell the other safekeepers our flush position.
 *
 * commit_lsn is the highest LSN flushed on a majority within the current
 * term, so each safekeeper needs its peers' flush positions. A thread of
 * its own pushes the loop's published snapshot to every peer whenever it
 * changes (coalesced: at most one round per peer_interval_ms) and at
 * least once a second, with short timeouts so that a dead peer delays
 * nothing but its own updates.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "errors.h"
#include "http_client.h"
#include "log.h"

#define HEARTBEAT_MS 1000

struct sk_peers {
    sk_daemon *sk;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool kicked, stop;
    lb_http_client *http[SK_MAX_PEERS];
    uint64_t sent_version[SK_MAX_PEERS][SK_MAX_TIMELINES];
    int64_t last_round_ms;
    sk_tl_snapshot snap[SK_MAX_TIMELINES];
};

static void
push(sk_peers *p, int peer, const sk_tl_snapshot *s)
{
    sk_daemon *sk = p->sk;
    char url[512], body[256], flush[LB_LSN_STRLEN];
    snprintf(url, sizeof(url), "%s/v1/tenant/%s/timeline/%s/peer", sk->peers[peer].url,
             s->tenant_id, s->timeline_id);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"term\":%" PRIu64 ",\"last_log_term\":%" PRIu64
             ",\"flush_lsn\":\"%s\"}",
             sk->conf.id, s->term, s->last_log_term, lb_lsn_format(s->flush_lsn, flush));
    const char *hdr[] = {"Content-Type: application/json"};
    lb_http_call call = {.method = "POST",
                         .url = url,
                         .headers = hdr,
                         .nheaders = 1,
                         .body = body,
                         .body_len = strlen(body),
                         .retry_non_idempotent = true,
                         .max_attempts = 1};
    lb_http_result res = LB_HTTP_RESULT_INIT;
    int rc = lb_http_do(p->http[peer], &call, &res);
    if (rc != 0 || (res.status != 200 && res.status != 404))
        lb_debug("could not reach peer \"%s\": %s", sk->peers[peer].name,
                 rc ? lb_http_client_error(p->http[peer]) : "unexpected status");
    lb_http_result_free(&res);
}

static void *
run(void *arg)
{
    sk_peers *p = arg;
    sk_daemon *sk = p->sk;
    sk_tl_snapshot *snap = p->snap;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->kicked && !p->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
                break;
        }
        bool stop = p->stop;
        p->kicked = false;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;

        pthread_mutex_lock(&sk->snap_lock);
        int n = sk->nsnap;
        memcpy(snap, sk->snap, (size_t)n * sizeof(snap[0]));
        pthread_mutex_unlock(&sk->snap_lock);

        int64_t now = lb_now_ms();
        bool heartbeat = now - p->last_round_ms >= HEARTBEAT_MS;
        for (int peer = 0; peer < sk->npeers; peer++)
            for (int i = 0; i < n; i++)
                if (heartbeat || p->sent_version[peer][i] != snap[i].version) {
                    push(p, peer, &snap[i]);
                    p->sent_version[peer][i] = snap[i].version;
                }
        if (heartbeat)
            p->last_round_ms = now;
        /* Coalesce: changes during this pause go out together next round. */
        if (sk->conf.peer_interval_ms > 0)
            usleep((useconds_t)sk->conf.peer_interval_ms * 1000);
    }
    return NULL;
}

int
sk_peers_start(sk_daemon *sk, sk_peers **out)
{
    sk_peers *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->sk = sk;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    lb_http_options opts = {.connect_timeout_ms = 200, .timeout_ms = 1000, .max_attempts = 1};
    for (int i = 0; i < sk->npeers; i++) {
        int rc = lb_http_client_new(&opts, &p->http[i]);
        if (rc) {
            sk_peers_stop(p);
            return rc;
        }
    }
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        sk_peers_stop(p);
        return -EAGAIN;
    }
    *out = p;
    return 0;
}

void
sk_peers_kick(sk_peers *p)
{
    pthread_mutex_lock(&p->lock);
    p->kicked = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void
sk_peers_stop(sk_peers *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    bool started = p->thread != 0;
    p->stop = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (started)
        pthread_join(p->thread, NULL);
    for (int i = 0; i < SK_MAX_PEERS; i++)
        lb_http_client_free(p->http[i]);
    free(p);
}
