/*
 * queue.h: the controller's rate-limited work queue of object keys.
 *
 * Keys are "kind/namespace/name" strings. The queue has client-go's
 * workqueue semantics:
 *   - dedup: a key added while it waits is not added twice;
 *   - a key is handed to one worker at a time: added while a worker holds
 *     it, it waits until that worker calls ctl_queue_done(), then comes
 *     back once;
 *   - delays: ctl_queue_add_after() makes a key ready later (the earliest
 *     of several requests wins);
 *   - rate limiting: ctl_queue_add_rate_limited() delays a key by
 *     base * 2^failures (capped at max), failures counted per key until
 *     ctl_queue_forget().
 * Ready keys come out in the order they were first added.
 *
 * Threads: every function may be called from any thread.
 *
 * Callers: controller.c (informer events, resync, workers).
 */
#ifndef CTL_QUEUE_H
#define CTL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ctl_queue ctl_queue;

/* base_ms, max_ms: the backoff of rate-limited adds (first retry after
 * base_ms). now_ms: the monotonic clock in ms (NULL: lb_mono_ms; tests pass
 * their own and call ctl_queue_get with timeout 0). 0, -ENOMEM, -EINVAL. */
int ctl_queue_new(int64_t base_ms, int64_t max_ms, int64_t (*now_ms)(void), ctl_queue **out);
/* Frees the queue; no thread may be inside it. */
void ctl_queue_free(ctl_queue *q);

/* Add key now / after delay_ms / after its backoff. Copies key. 0, -ENOMEM,
 * -ESHUTDOWN (after ctl_queue_shutdown: dropped). */
int ctl_queue_add(ctl_queue *q, const char *key);
int ctl_queue_add_after(ctl_queue *q, const char *key, int64_t delay_ms);
int ctl_queue_add_rate_limited(ctl_queue *q, const char *key);
/* Reset key's failure count (after a successful reconcile). */
void ctl_queue_forget(ctl_queue *q, const char *key);
/* How many failures key has had since its last forget. */
int ctl_queue_failures(ctl_queue *q, const char *key);

/* Take the next ready key, waiting up to timeout_ms (< 0: for ever). On 0,
 * *key is the caller's (free() it) and the caller must call
 * ctl_queue_done(q, key) when finished. LB_ETIMEOUT, -ESHUTDOWN. */
int ctl_queue_get(ctl_queue *q, int64_t timeout_ms, char **key);
void ctl_queue_done(ctl_queue *q, const char *key);

/* Keys waiting (ready or delayed), not counting those being processed. */
size_t ctl_queue_len(ctl_queue *q);
/* Wake every waiting ctl_queue_get(), which then returns -ESHUTDOWN. */
void ctl_queue_shutdown(ctl_queue *q);

#endif
