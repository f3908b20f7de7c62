/*
 * events.h: Kubernetes Events (core/v1) about the controller's objects.
 *
 * An Event is recorded for each step (a StatefulSet created, a timeline
 * made) and each failure, on the LakebaseCluster or Branch it concerns. The
 * same reason and message on the same object within the recorder's memory
 * bumps the existing Event's count (a merge patch) instead of creating a
 * new one, as client-go's recorder does, so a failure retried every few
 * seconds makes one Event, not hundreds. Messages must never hold a secret.
 *
 * Failures to record are logged and otherwise ignored: an Event is
 * informative, never part of a reconcile's outcome.
 *
 * Threads: a recorder may be used from every worker at once (each passes
 * its own client).
 *
 * Callers: cluster.c, branch.c.
 */
#ifndef CTL_EVENTS_H
#define CTL_EVENTS_H

#include <jansson.h>

#include "kube.h"

typedef struct ctl_events ctl_events;

/* instance: the reportingInstance (the controller's identity). */
int ctl_events_new(const char *instance, ctl_events **out);
void ctl_events_free(ctl_events *ev);

/* Record an Event on obj (a full object: apiVersion, kind, metadata).
 * type "Normal" or "Warning"; reason CamelCase. */
void ctl_event(ctl_events *ev, ctl_kube *k, const json_t *obj, const char *type, const char *reason,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
