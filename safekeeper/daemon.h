/*
 * daemon.h: the safekeeper process: its configuration, its timelines, and
 * the rule that keeps it simple: all timeline state belongs to the event
 * loop's thread.
 *
 * HTTP handlers run on the HTTP server's threads; they never touch a
 * timeline directly but hand a job to the loop with sk_run_on_loop() and
 * wait for its result. The walsender server, the receivers and the peer
 * connections live on the loop. /metrics reads a snapshot of positions
 * that the loop publishes under a mutex.
 *
 * Shared by the files of this component only.
 */
#ifndef SK_DAEMON_H
#define SK_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "event_loop.h"
#include "http_server.h"
#include "metrics.h"
#include "recv.h"
#include "timeline.h"

#define SK_MAX_TIMELINES 1024
#define SK_MAX_PEERS 8

typedef struct sk_config {
    char *id; /* this safekeeper's name: application_name, e.g. "sk-0" */
    char *data_dir;
    lb_config_addr listen_http; /* control API, /metrics, WAL over HTTP */
    lb_config_addr listen_pg;   /* walsender-compatible server */
    lb_config_list peers;       /* the other safekeepers: "name=host:port" (their listen_pg) */
    int log_level;              /* lb_log_level */
    int64_t http_threads;
    char *remote_storage;         /* object store URL for offloaded WAL; "" = no offload */
    lb_config_list peers_http;    /* the other safekeepers' HTTP: "name=host:port"; the only
                                     donors /accept fetches WAL from */
    char *auth_public_keys;       /* PEM file or directory of *.pem verifying every token */
    char *auth_token_file;        /* this safekeeper's own token (role safekeeper, sub = id) */
    char *compute_password_file;  /* password of role lakebase_safekeeper on computes; "":
                                     connect as postgres (computes that still trust) */
    int64_t max_connections;      /* walsender connections at once */
    int64_t http_max_connections; /* HTTP connections at once; beyond, refused */
    int64_t startup_timeout_ms;   /* a walsender connection must authenticate within this */
    int64_t consumer_ttl_ms;      /* a consumer silent this long stops holding WAL */
    uint64_t max_accept_bytes;    /* the most WAL one /accept may copy from a donor */
} sk_config;

typedef struct sk_peer {
    char name[64];
    lb_config_addr addr; /* its walsender port */
    lb_config_addr http; /* its HTTP API (port 0: not configured) */
} sk_peer;

typedef struct sk_tl_entry {
    sk_timeline *tl;
    sk_receiver *recv;
    char tenant_id[SK_ID_LEN + 1];
    char timeline_id[SK_ID_LEN + 1];
} sk_tl_entry;

/* Positions the loop publishes for /metrics. */
typedef struct sk_tl_snapshot {
    char tenant_id[SK_ID_LEN + 1];
    char timeline_id[SK_ID_LEN + 1];
    uint64_t term, last_log_term;
    lb_lsn flush_lsn, commit_lsn;
    lb_gauge *flush_gauge, *commit_gauge, *term_gauge; /* this timeline's series */
} sk_tl_snapshot;

typedef struct sk_job sk_job;
typedef struct sk_walsender sk_walsender;
typedef struct sk_peers sk_peers;
typedef struct sk_offload sk_offload;

typedef struct sk_daemon {
    sk_config conf;
    sk_peer peers[SK_MAX_PEERS];
    int npeers;
    lb_loop *loop;
    lb_http_server *http;
    lb_metrics *metrics;
    sk_walsender *walsender;
    sk_peers *peer_sync;
    sk_offload *offload;
    lb_auth_keys *keys;         /* verifies every request; reloaded on SIGHUP */
    lb_auth_token *token;       /* ours, towards peers; reloaded on SIGHUP */
    char compute_password[256]; /* loop thread; "" when not configured */

    /* loop thread only */
    sk_tl_entry timelines[SK_MAX_TIMELINES];
    int ntimelines;

    /* job queue: HTTP threads -> loop */
    pthread_mutex_t jobs_lock;
    pthread_cond_t jobs_done;
    sk_job *jobs;
    bool loop_running;

    /* snapshot: loop -> metrics */
    pthread_mutex_t snap_lock;
    sk_tl_snapshot snap[SK_MAX_TIMELINES];
    int nsnap;

    /* metrics */
    lb_histogram *fsync_seconds;
    lb_counter *wal_bytes;
    lb_counter *offloaded_bytes;
    lb_gauge *flush_lsn_gauge, *commit_lsn_gauge, *term_gauge;
} sk_daemon;

/* ---- daemon.c ------------------------------------------------------------- */

int sk_daemon_init(sk_daemon *sk);
void sk_daemon_shutdown(sk_daemon *sk);
/* Run fn(sk, arg) on the loop thread and return its result. Called from
 * any other thread; -ESHUTDOWN once the loop has stopped. */
int sk_run_on_loop(sk_daemon *sk, int (*fn)(sk_daemon *sk, void *arg), void *arg);
/* Loop thread: find a timeline (NULL if absent). */
sk_tl_entry *sk_find(sk_daemon *sk, const char *tenant_id, const char *timeline_id);
/* Loop thread: create/open and register; remove. */
int sk_add_timeline(sk_daemon *sk, sk_timeline *tl);
int sk_remove_timeline(sk_daemon *sk, const char *tenant_id, const char *timeline_id);
/* Loop thread: after any protocol change of a timeline. */
void sk_timeline_changed(sk_daemon *sk, sk_tl_entry *e);
/* Index of a peer by name, -1 if unknown. */
int sk_peer_index(const sk_daemon *sk, const char *name);
/* Index of the peer whose HTTP address url ("http://host:port", an
 * optional trailing "/") is, SK_PEER_SELF if it is this safekeeper's own,
 * -1 if none. */
#define SK_PEER_SELF (-2)
int sk_peer_by_url(const sk_daemon *sk, const char *url);

/* ---- http_api.c ----------------------------------------------------------- */
int sk_http_routes(sk_daemon *sk);

/* ---- walsender.c ---------------------------------------------------------- */
int sk_walsender_start(sk_daemon *sk, sk_walsender **out);
void sk_walsender_stop(sk_walsender *ws);
/* Loop thread: new WAL is committed; wake streaming connections. */
void sk_walsender_notify(sk_walsender *ws);
int sk_walsender_port(const sk_walsender *ws);

/* ---- peers.c -------------------------------------------------------------- */
/* Loop thread, all of them. */
int sk_peers_start(sk_daemon *sk, sk_peers **out);
void sk_peers_stop(sk_peers *p);
/* Positions may have changed: tell the peers that can take it now. */
void sk_peers_publish(sk_peers *p);
/* The timeline slots changed (added, removed): tell everything again. */
void sk_peers_forget(sk_peers *p);

/* ---- offload.c ------------------------------------------------------------ */
/* Starts nothing (and *out = NULL) when no remote storage is configured. */
int sk_offload_start(sk_daemon *sk, sk_offload **out);
void sk_offload_stop(sk_offload *o);

#endif
