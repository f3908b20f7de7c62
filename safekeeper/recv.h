/*
 * recv.h: the safekeeper as a replication client of the compute.
 *
 * One receiver per timeline. It connects to the compute named by the
 * timeline's current term (a physical replication connection whose
 * application_name is this safekeeper's name, which is what
 * synchronous_standby_names lists), checks that the compute is the
 * database system and PostgreSQL timeline the term expects, and streams
 * WAL into the timeline. The daemon's before-sleep hook syncs the timeline
 * and then calls sk_receiver_report(), so a flush position is reported
 * only after it is fsynced, once per batch (group commit).
 *
 * Everything runs on the daemon's loop thread; libpq is used in
 * non-blocking mode and never blocks the loop.
 */
#ifndef SK_RECV_H
#define SK_RECV_H

#include <stdbool.h>

#include "event_loop.h"
#include "timeline.h"

typedef struct sk_receiver sk_receiver;

typedef struct sk_receiver_stats {
    bool streaming;
    uint64_t bytes_received;
    uint64_t connects;
    uint64_t status_sent;
} sk_receiver_stats;

/* app_name: this safekeeper's name, e.g. "sk-0" (copied). */
int sk_receiver_new(lb_loop *loop, sk_timeline *tl, const char *app_name, sk_receiver **out);
/* The password of role lakebase_safekeeper on the compute: password points
 * at the daemon's copy (not owned; read at each connect, so a reload takes
 * effect at the next one). "" or NULL: connect as postgres, for computes
 * that still trust their local network. */
void sk_receiver_set_password(sk_receiver *r, const char *password);
/* Disconnects and frees; the timeline is not touched. */
void sk_receiver_free(sk_receiver *r);

/* Reconcile with the timeline: connect to its current term's compute, or
 * disconnect at once if the term moved on (a vote for a newer term) or the
 * timeline broke. Call after any change and periodically (it also does
 * reconnect backoff). */
void sk_receiver_poke(sk_receiver *r);
/* Send a standby status update if flush advanced or the compute asked for
 * one, or if the last one is older than a second. Call after a sync. */
void sk_receiver_report(sk_receiver *r);
/* true while bytes were appended since the last sync. */
bool sk_receiver_dirty(const sk_receiver *r);
void sk_receiver_stats_get(const sk_receiver *r, sk_receiver_stats *s);

#endif
