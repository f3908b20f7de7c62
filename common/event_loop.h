/*
 * event_loop.h: one small event loop per daemon (after Redis's ae).
 *
 * File events (epoll), timers, signals (signalfd: handlers never run in
 * signal context, the loop calls them like any other event), a cross-thread
 * wakeup, and a before-sleep hook. The before-sleep hook is where daemons do
 * batched work: the safekeeper fsyncs everything written in this iteration
 * once, then acknowledges it (group commit).
 *
 * A loop and its callbacks belong to one thread. The only call that is safe
 * from other threads is lb_loop_wakeup().
 */
#ifndef LB_EVENT_LOOP_H
#define LB_EVENT_LOOP_H

#include "buf.h"
#include "clock.h"

#include <stdint.h>

typedef struct lb_loop lb_loop;

#define LB_READABLE 1
#define LB_WRITABLE 2
/* Neither readable nor writable: only an error or hangup (reset, or both
 * directions shut) calls back, as LB_READABLE. For a connection that reads
 * nothing now but must still learn that its peer went away. */
#define LB_HANGUP 4

/* events: LB_READABLE/LB_WRITABLE that fired (error and hangup report as
 * readable, so the callback's read sees the error or EOF). */
typedef void (*lb_fd_cb)(lb_loop *loop, int fd, int events, void *arg);
/* Return the delay in ms until the next run, or -1 to delete the timer. */
typedef int64_t (*lb_timer_cb)(lb_loop *loop, uint64_t id, void *arg);
typedef void (*lb_signal_cb)(lb_loop *loop, int signo, void *arg);
typedef void (*lb_hook_cb)(lb_loop *loop, void *arg);

/* Create and destroy. lb_loop_free closes no registered fd: callers own them. */
int lb_loop_new(lb_loop **loop);
void lb_loop_free(lb_loop *loop);

/* Watch fd for events (replaces any earlier registration of fd). */
int lb_loop_watch(lb_loop *loop, int fd, int events, lb_fd_cb cb, void *arg);
/* Stop watching fd; safe to call from inside any callback, including fd's own. */
void lb_loop_unwatch(lb_loop *loop, int fd);

/* A connection's output: send as much of out as the non-blocking socket
 * fd takes now (consumed from out), then watch fd for reading, and for
 * writing while output remains, with cb. 0; -errno of a failed send (a
 * dead peer: the caller closes fd); or the error of lb_loop_watch(). */
int lb_loop_send_buf(lb_loop *loop, int fd, lb_buf *out, lb_fd_cb cb, void *arg);

/* Timers: first run after delay_ms. *id (optional) identifies it for deletion. */
int lb_loop_add_timer(lb_loop *loop, int64_t delay_ms, lb_timer_cb cb, void *arg, uint64_t *id);
void lb_loop_del_timer(lb_loop *loop, uint64_t id);

/* Deliver signo through the loop instead of a handler (blocks it for the
 * calling thread; call before starting other threads so they inherit it). */
int lb_loop_watch_signal(lb_loop *loop, int signo, lb_signal_cb cb, void *arg);

/* Called after each round of events, before the loop blocks again. */
void lb_loop_set_before_sleep(lb_loop *loop, lb_hook_cb cb, void *arg);
/* Called on lb_loop_wakeup() from any thread (coalesced). */
void lb_loop_set_on_wakeup(lb_loop *loop, lb_hook_cb cb, void *arg);
void lb_loop_wakeup(lb_loop *loop);

/* Run until lb_loop_stop(). Returns 0, or -errno if epoll fails. */
int lb_loop_run(lb_loop *loop);
/* One iteration: wait at most timeout_ms (-1: until the next timer or event). */
int lb_loop_run_once(lb_loop *loop, int timeout_ms);
void lb_loop_stop(lb_loop *loop);

/* The loop's timers run on lb_mono_ms() (clock.h). */

#endif
