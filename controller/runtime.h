/*
 * runtime.h: the running controller: informers feeding the work queue,
 * worker threads running reconciles, and the periodic resync.
 *
 * Callers: main.c (start once leading, stop at shutdown).
 */
#ifndef CTL_RUNTIME_H
#define CTL_RUNTIME_H

#include <stdbool.h>

#include "controller.h"

typedef struct ctl_runtime ctl_runtime;

/* Start the informers and opts->workers workers. 0, -ENOMEM, -errno. */
int ctl_runtime_start(ctl_ctx *c, ctl_runtime **out);
/* true once every informer has delivered its first list. */
bool ctl_runtime_synced(ctl_runtime *r);
/* Enqueue every known LakebaseCluster and Branch (the resync). */
void ctl_runtime_resync(ctl_runtime *r);
/* Stop (after ctl_kube_abort_all) and free. */
void ctl_runtime_stop(ctl_runtime *r);

/* "cluster/NS/NAME" -> kind "cluster", ns, name (in buf). 0 or -EINVAL. */
int ctl_key_split(const char *key, char *buf, size_t cap, const char **kind, const char **ns,
                  const char **name);

#endif
