/*
 * peers.c: tell the other safekeepers our flush position.
 *
 * commit_lsn is the highest LSN flushed on a majority within the current
 * term, so each safekeeper needs its peers' flush positions. Each
 * safekeeper keeps one connection to every peer's walsender port, opened
 * with its token (auth_token_file, role safekeeper, sub = its name) as the
 * password, and START_PEER_STREAM, and writes
 * a small fixed-size message (repl_command.h) for every timeline whose
 * (term, last log term, flush LSN) changed.
 *
 * Everything runs on the loop thread: sk_peers_publish() is called after
 * each round of fsyncs, so positions go out once per group commit, not per
 * message from the compute. A peer that does not read (stopped, or a slow
 * network) is never queued for: new positions are written only when the
 * previous ones left the buffer, and only the latest counts. A peer that
 * is down is retried every RETRY_MS; every HEARTBEAT_MS all positions are
 * sent again, so a peer that lost them (a restart it did not notice as a
 * broken connection) learns them within that time.
 *
 * Peer names never block the loop: a numeric address is used as it is,
 * and a name is resolved by getaddrinfo_a() in the resolver's own thread;
 * the loop looks at the answer on its next tick (P_RESOLVING).
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "errors.h"
#include "log.h"
#include "pgwire.h"
#include "repl_command.h"

#define RETRY_MS 1000
#define HEARTBEAT_MS 1000
#define IN_MAX (64u * 1024)

typedef enum pstate {
    P_DOWN,       /* not connected; retry at retry_at_ms */
    P_RESOLVING,  /* the peer's name is being resolved off the loop */
    P_CONNECTING, /* connect() in progress */
    P_STREAMING,  /* startup and START_PEER_STREAM sent; positions flow */
} pstate;

/* What a peer was last told about one of our timeline slots. */
typedef struct told {
    uint64_t term, last_log_term;
    lb_lsn flush_lsn;
    bool valid;
} told;

typedef struct peer_conn {
    sk_peers *p;
    int index;
    int fd;
    pstate state;
    lb_buf out, in;
    int64_t retry_at_ms;
    bool warned; /* a failure was logged; log the next success */
    told sent[SK_MAX_TIMELINES];
    /* P_RESOLVING: the request getaddrinfo_a() works on */
    struct gaicb gai;
    struct addrinfo gai_hints;
    char gai_port[16];
} peer_conn;

struct sk_peers {
    sk_daemon *sk;
    peer_conn conns[SK_MAX_PEERS];
    uint64_t timer;
};

static void conn_event(lb_loop *loop, int fd, int events, void *arg);

static void
conn_down(peer_conn *c, const char *why)
{
    sk_daemon *sk = c->p->sk;
    if (c->fd >= 0) {
        lb_loop_unwatch(sk->loop, c->fd);
        close(c->fd);
    }
    c->fd = -1;
    c->state = P_DOWN;
    lb_buf_reset(&c->out);
    lb_buf_reset(&c->in);
    c->retry_at_ms = lb_mono_ms() + RETRY_MS;
    if (why && !c->warned)
        lb_warn("peer \"%s\" (%s:%d): %s; retrying every %d ms", sk->peers[c->index].name,
                sk->peers[c->index].addr.host, sk->peers[c->index].addr.port, why, RETRY_MS);
    c->warned = c->warned || why;
}

static void
forget_sent(peer_conn *c)
{
    for (int i = 0; i < SK_MAX_TIMELINES; i++)
        c->sent[i].valid = false;
}

/* Queue the positions that changed since this peer last heard, if what was
 * queued before has left; then write what we can. */
static void
conn_pump(peer_conn *c)
{
    sk_daemon *sk = c->p->sk;
    if (c->state != P_STREAMING)
        return;
    if (c->out.len == 0) {
        for (int i = 0; i < sk->ntimelines; i++) {
            sk_timeline *tl = sk->timelines[i].tl;
            const sk_acceptor_state *st = sk_timeline_state(tl);
            told now = {st->term, sk_last_log_term(st), sk_timeline_flush_lsn(tl), true};
            told *t = &c->sent[i];
            if (t->valid && t->term == now.term && t->last_log_term == now.last_log_term &&
                t->flush_lsn == now.flush_lsn)
                continue;
            sk_peer_msg m = {
                .term = now.term, .last_log_term = now.last_log_term, .flush_lsn = now.flush_lsn};
            memcpy(m.tenant_id, st->tenant_id, sizeof(m.tenant_id));
            memcpy(m.timeline_id, st->timeline_id, sizeof(m.timeline_id));
            uint8_t body[SK_PEER_MSG_LEN];
            sk_peer_msg_encode(&m, body);
            size_t start;
            lb_pq_begin(&c->out, 'd', &start);
            lb_pq_put_bytes(&c->out, body, sizeof(body));
            lb_pq_end(&c->out, start);
            *t = now;
        }
    }
    int rc = lb_loop_send_buf(sk->loop, c->fd, &c->out, conn_event, c);
    if (rc)
        conn_down(c, lb_strerror(rc));
}

/* The server says little: authentication, parameters, ReadyForQuery,
 * CopyBothResponse. An ErrorResponse (an unknown name, a server going
 * down) ends the connection with its message in our log. */
static void
read_input(peer_conn *c)
{
    for (;;) {
        lb_pq_msg m;
        size_t used;
        int rc = lb_pq_parse_msg(c->in.data, c->in.len, IN_MAX, &m, &used);
        if (rc == LB_ETRUNCATED)
            return;
        if (rc) {
            conn_down(c, "invalid message from the peer");
            return;
        }
        if (m.type == 'E') {
            lb_pq_error err;
            char why[300];
            if (lb_pq_parse_error(&m, &err) == 0)
                snprintf(why, sizeof(why), "peer refused the position stream: %s", err.message);
            else
                snprintf(why, sizeof(why), "peer refused the position stream");
            c->warned = false; /* a refusal is always worth a line */
            conn_down(c, why);
            return;
        }
        lb_buf_consume(&c->in, used);
    }
}

static void
conn_event(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    peer_conn *c = arg;
    if (c->state == P_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            conn_down(c, strerror(err));
            return;
        }
        sk_daemon *sk = c->p->sk;
        const char *params[] = {"user", sk->conf.id, "application_name", sk->conf.id, "replication",
                                "true", NULL};
        lb_pq_put_startup(&c->out, params);
        /* The token answers the server's cleartext password request; sent
         * at once, as the server reads the messages in order. */
        char token[LB_AUTH_TOKEN_MAX + 1] = "";
        if (sk->token)
            lb_auth_token_get(sk->token, token, sizeof(token));
        lb_pq_put_password(&c->out, token);
        explicit_bzero(token, sizeof(token));
        size_t start;
        lb_pq_begin(&c->out, 'Q', &start);
        lb_pq_put_str(&c->out, "START_PEER_STREAM");
        lb_pq_end(&c->out, start);
        c->state = P_STREAMING;
        if (c->warned)
            lb_info("peer \"%s\" (%s:%d) reached", sk->peers[c->index].name,
                    sk->peers[c->index].addr.host, sk->peers[c->index].addr.port);
        c->warned = false;
        forget_sent(c);
        /* Startup and command go out first; positions once they have left. */
        conn_pump(c);
        if (c->state == P_STREAMING && c->out.len == 0)
            conn_pump(c);
        return;
    }
    if (events & LB_READABLE) {
        char buf[4096];
        for (;;) {
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r > 0) {
                if (c->in.len + (size_t)r > IN_MAX + 64 || lb_buf_append(&c->in, buf, (size_t)r)) {
                    conn_down(c, "peer sent too much");
                    return;
                }
                continue;
            }
            if (r == 0) {
                conn_down(c, "connection closed by the peer");
                return;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_down(c, strerror(errno));
                return;
            }
            break;
        }
        read_input(c);
        if (c->state != P_STREAMING)
            return;
    }
    conn_pump(c);
}

static void conn_connect(peer_conn *c, struct addrinfo *ai);

/* Start connecting: a numeric address at once, a name once resolved. */
static void
conn_open(peer_conn *c)
{
    sk_daemon *sk = c->p->sk;
    const sk_peer *peer = &sk->peers[c->index];
    snprintf(c->gai_port, sizeof(c->gai_port), "%d", peer->addr.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
                    *ai = NULL;
    if (getaddrinfo(peer->addr.host, c->gai_port, &hints, &ai) == 0) {
        conn_connect(c, ai); /* a numeric address: no resolver involved */
        return;
    }
    c->gai_hints = (struct addrinfo){
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    c->gai = (struct gaicb){
        .ar_name = peer->addr.host, .ar_service = c->gai_port, .ar_request = &c->gai_hints};
    struct gaicb *list[1] = {&c->gai};
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    int grc = getaddrinfo_a(GAI_NOWAIT, list, 1, &none);
    if (grc != 0) {
        conn_down(c, gai_strerror(grc));
        return;
    }
    c->state = P_RESOLVING;
}

/* P_RESOLVING, on the tick: connect once the answer is in. */
static void
conn_resolved(peer_conn *c)
{
    int grc = gai_error(&c->gai);
    if (grc == EAI_INPROGRESS)
        return;
    struct addrinfo *ai = c->gai.ar_result;
    c->gai.ar_result = NULL;
    c->state = P_DOWN;
    if (grc != 0) {
        if (ai)
            freeaddrinfo(ai);
        conn_down(c, gai_strerror(grc));
        return;
    }
    conn_connect(c, ai);
}

/* Connect to the first address of ai (freed here). */
static void
conn_connect(peer_conn *c, struct addrinfo *ai)
{
    sk_daemon *sk = c->p->sk;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        conn_down(c, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int err = errno;
    freeaddrinfo(ai);
    c->fd = fd;
    if (rc != 0 && err != EINPROGRESS) {
        conn_down(c, strerror(err));
        return;
    }
    c->state = P_CONNECTING;
    if (lb_loop_watch(sk->loop, fd, LB_WRITABLE, conn_event, c) != 0)
        conn_down(c, "could not watch the connection");
}

static int64_t
tick(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    sk_peers *p = arg;
    int64_t now = lb_mono_ms();
    for (int i = 0; i < p->sk->npeers; i++) {
        peer_conn *c = &p->conns[i];
        if (c->state == P_DOWN && now >= c->retry_at_ms) {
            conn_open(c);
        } else if (c->state == P_RESOLVING) {
            conn_resolved(c);
        } else if (c->state == P_STREAMING) {
            forget_sent(c); /* heartbeat: everything again */
            conn_pump(c);
        }
    }
    return HEARTBEAT_MS;
}

int
sk_peers_start(sk_daemon *sk, sk_peers **out)
{
    sk_peers *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->sk = sk;
    for (int i = 0; i < SK_MAX_PEERS; i++) {
        peer_conn *c = &p->conns[i];
        c->p = p;
        c->index = i;
        c->fd = -1;
        c->state = P_DOWN;
    }
    for (int i = 0; i < sk->npeers; i++)
        conn_open(&p->conns[i]);
    int rc = lb_loop_add_timer(sk->loop, RETRY_MS, tick, p, &p->timer);
    if (rc) {
        sk_peers_stop(p);
        return rc;
    }
    *out = p;
    return 0;
}

void
sk_peers_publish(sk_peers *p)
{
    for (int i = 0; i < p->sk->npeers; i++)
        conn_pump(&p->conns[i]);
}

void
sk_peers_forget(sk_peers *p)
{
    for (int i = 0; i < p->sk->npeers; i++)
        forget_sent(&p->conns[i]);
}

void
sk_peers_stop(sk_peers *p)
{
    if (!p)
        return;
    if (p->timer)
        lb_loop_del_timer(p->sk->loop, p->timer);
    for (int i = 0; i < SK_MAX_PEERS; i++) {
        peer_conn *c = &p->conns[i];
        if (c->state == P_RESOLVING) {
            /* the resolver thread must be done with c->gai before it goes */
            if (gai_cancel(&c->gai) != EAI_CANCELED) {
                const struct gaicb *list[1] = {&c->gai};
                while (gai_error(&c->gai) == EAI_INPROGRESS)
                    gai_suspend(list, 1, NULL);
            }
            if (c->gai.ar_result)
                freeaddrinfo(c->gai.ar_result);
        }
        if (c->fd >= 0) {
            lb_loop_unwatch(p->sk->loop, c->fd);
            close(c->fd);
        }
        lb_buf_free(&c->out);
        lb_buf_free(&c->in);
    }
    free(p);
}
