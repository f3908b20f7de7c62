/*
 * leader.h: leader election with a coordination.k8s.io/v1 Lease, as
 * client-go's leaderelection package does it.
 *
 * A candidate reads the Lease every retry period. It takes the Lease when
 * there is none, when it has no holder, or when the record (holder and
 * renewTime) has not changed for lease_duration by the candidate's own
 * clock (never by comparing its clock with another machine's). Takes and
 * renewals are conditional updates (resourceVersion): of two candidates
 * only one succeeds. The leader renews every retry period; if it has not
 * renewed for renew_deadline it has lost the Lease, and on_lost runs (the
 * controller exits: a process that may have been superseded must not write
 * another reconcile). On a clean stop the leader releases the Lease (empty
 * holder), so a successor need not wait out the lease.
 *
 * Defaults are client-go's: 15 s lease, 10 s renew deadline, 2 s retry.
 *
 * Threads: the election runs on its own thread; on_started and on_lost run
 * there.
 *
 * Callers: main.c.
 */
#ifndef CTL_LEADER_H
#define CTL_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "kubeconfig.h"

typedef struct ctl_leader ctl_leader;

typedef struct ctl_leader_config {
    const char *ns;            /* the Lease's namespace */
    const char *name;          /* the Lease's name */
    const char *identity;      /* this candidate's holderIdentity */
    int64_t lease_ms;          /* 0: 15000 */
    int64_t renew_deadline_ms; /* 0: 10000 */
    int64_t retry_ms;          /* 0: 2000 */
    void (*on_started)(void *arg);
    void (*on_lost)(void *arg);
    void *arg;
} ctl_leader_config;

/* Start campaigning on a new thread. 0, -ENOMEM, -errno. */
int ctl_leader_start(const ctl_kubeconfig *kc, const ctl_leader_config *config, ctl_leader **out);
bool ctl_leader_is_leader(ctl_leader *l);
/* Stop campaigning; if leading, release the Lease. Joins and frees. */
void ctl_leader_stop(ctl_leader *l);

#endif
