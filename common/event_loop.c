/*
 * event_loop.c: epoll-based loop of event_loop.h.
 *
 * File registrations live in an array indexed by fd, so dispatch is O(1).
 * Timers are kept in an unsorted array and scanned; daemons have a handful.
 * Unwatching an fd from inside a callback is safe because dispatch looks the
 * registration up again for every event rather than caching pointers, and a
 * generation counter discards events for an fd that was closed and reused
 * during the same round.
 */
#include "event_loop.h"
#include "errors.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

typedef struct fd_watch {
    lb_fd_cb cb;
    void *arg;
    int events;
    uint32_t generation;
} fd_watch;

typedef struct timer {
    uint64_t id;
    int64_t when_ms;
    lb_timer_cb cb;
    void *arg;
} timer;

typedef struct signal_watch {
    int signo;
    lb_signal_cb cb;
    void *arg;
} signal_watch;

struct lb_loop {
    int epfd;
    int wakefd;
    int sigfd;
    sigset_t sigmask;
    fd_watch *fds;
    int nfds_cap;
    timer *timers;
    size_t ntimers, timers_cap;
    uint64_t next_timer_id;
    signal_watch signals[16];
    int nsignals;
    lb_hook_cb before_sleep, on_wakeup;
    void *before_sleep_arg, *on_wakeup_arg;
    bool stop;
};

static int
grow_fds(lb_loop *loop, int fd)
{
    if (fd < loop->nfds_cap)
        return 0;
    int cap = loop->nfds_cap ? loop->nfds_cap : 64;
    while (cap <= fd)
        cap *= 2;
    fd_watch *p = realloc(loop->fds, (size_t)cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    memset(p + loop->nfds_cap, 0, (size_t)(cap - loop->nfds_cap) * sizeof(*p));
    loop->fds = p;
    loop->nfds_cap = cap;
    return 0;
}

static uint32_t
epoll_mask(int events)
{
    uint32_t m = 0;
    if (events & LB_READABLE)
        m |= EPOLLIN | EPOLLRDHUP;
    if (events & LB_WRITABLE)
        m |= EPOLLOUT;
    return m;
}

int
lb_loop_new(lb_loop **out)
{
    lb_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    loop->sigfd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || loop->wakefd < 0) {
        int rc = -errno;
        if (loop->epfd >= 0)
            close(loop->epfd);
        if (loop->wakefd >= 0)
            close(loop->wakefd);
        free(loop);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->wakefd};
    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev);
    sigemptyset(&loop->sigmask);
    loop->next_timer_id = 1;
    *out = loop;
    return 0;
}

void
lb_loop_free(lb_loop *loop)
{
    if (!loop)
        return;
    close(loop->epfd);
    close(loop->wakefd);
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    free(loop->fds);
    free(loop->timers);
    free(loop);
}

int
lb_loop_watch(lb_loop *loop, int fd, int events, lb_fd_cb cb, void *arg)
{
    assert(fd >= 0 && cb && events);
    int rc = grow_fds(loop, fd);
    if (rc)
        return rc;
    fd_watch *w = &loop->fds[fd];
    struct epoll_event ev = {.events = epoll_mask(events), .data.fd = fd};
    int op = w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, fd, &ev) != 0)
        return -errno;
    if (!w->events)
        w->generation++;
    w->cb = cb;
    w->arg = arg;
    w->events = events;
    return 0;
}

void
lb_loop_unwatch(lb_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nfds_cap || !loop->fds[fd].events)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->fds[fd].events = 0;
    loop->fds[fd].cb = NULL;
    loop->fds[fd].generation++;
}

int
lb_loop_add_timer(lb_loop *loop, int64_t delay_ms, lb_timer_cb cb, void *arg, uint64_t *id)
{
    if (loop->ntimers == loop->timers_cap) {
        size_t cap = loop->timers_cap ? loop->timers_cap * 2 : 16;
        timer *p = realloc(loop->timers, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        loop->timers = p;
        loop->timers_cap = cap;
    }
    timer *t = &loop->timers[loop->ntimers++];
    t->id = loop->next_timer_id++;
    t->when_ms = lb_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    t->cb = cb;
    t->arg = arg;
    if (id)
        *id = t->id;
    return 0;
}

void
lb_loop_del_timer(lb_loop *loop, uint64_t id)
{
    for (size_t i = 0; i < loop->ntimers; i++) {
        if (loop->timers[i].id == id) {
            loop->timers[i] = loop->timers[--loop->ntimers];
            return;
        }
    }
}

int
lb_loop_watch_signal(lb_loop *loop, int signo, lb_signal_cb cb, void *arg)
{
    if (loop->nsignals == (int)(sizeof(loop->signals) / sizeof(loop->signals[0])))
        return -ENOSPC;
    sigaddset(&loop->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) != 0)
        return -errno;
    int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (loop->sigfd < 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        loop->sigfd = fd;
    }
    loop->signals[loop->nsignals++] = (signal_watch){signo, cb, arg};
    return 0;
}

void
lb_loop_set_before_sleep(lb_loop *loop, lb_hook_cb cb, void *arg)
{
    loop->before_sleep = cb;
    loop->before_sleep_arg = arg;
}

void
lb_loop_set_on_wakeup(lb_loop *loop, lb_hook_cb cb, void *arg)
{
    loop->on_wakeup = cb;
    loop->on_wakeup_arg = arg;
}

void
lb_loop_wakeup(lb_loop *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wakefd, &one, sizeof(one));
    (void)w; /* EAGAIN means a wakeup is already pending */
}

void
lb_loop_stop(lb_loop *loop)
{
    loop->stop = true;
}

static int
next_timeout(lb_loop *loop, int timeout_ms)
{
    if (loop->ntimers == 0)
        return timeout_ms;
    int64_t first = loop->timers[0].when_ms;
    for (size_t i = 1; i < loop->ntimers; i++)
        if (loop->timers[i].when_ms < first)
            first = loop->timers[i].when_ms;
    int64_t wait = first - lb_mono_ms();
    if (wait < 0)
        wait = 0;
    if (timeout_ms >= 0 && wait > timeout_ms)
        wait = timeout_ms;
    return wait > 1000000 ? 1000000 : (int)wait;
}

static ssize_t
find_timer(lb_loop *loop, uint64_t id)
{
    for (size_t i = 0; i < loop->ntimers; i++)
        if (loop->timers[i].id == id)
            return (ssize_t)i;
    return -1;
}

static void
run_timers(lb_loop *loop)
{
    /* Snapshot the ids due now, then run them one by one, looking each up
     * again: callbacks may add and delete timers, and a timer that re-arms
     * itself with delay 0 waits for the next round instead of starving the
     * file events. */
    int64_t now = lb_mono_ms();
    uint64_t due[64];
    size_t ndue = 0;
    for (size_t i = 0; i < loop->ntimers && ndue < 64; i++)
        if (loop->timers[i].when_ms <= now)
            due[ndue++] = loop->timers[i].id;
    for (size_t k = 0; k < ndue; k++) {
        ssize_t i = find_timer(loop, due[k]);
        if (i < 0)
            continue; /* deleted by an earlier callback */
        timer t = loop->timers[i];
        int64_t again = t.cb(loop, t.id, t.arg);
        i = find_timer(loop, t.id);
        if (i < 0)
            continue; /* deleted by its own callback */
        if (again < 0)
            loop->timers[i] = loop->timers[--loop->ntimers];
        else
            loop->timers[i].when_ms = lb_mono_ms() + again;
    }
}

static void
drain_signals(lb_loop *loop)
{
    struct signalfd_siginfo si;
    while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        for (int i = 0; i < loop->nsignals; i++)
            if (loop->signals[i].signo == (int)si.ssi_signo)
                loop->signals[i].cb(loop, (int)si.ssi_signo, loop->signals[i].arg);
    }
}

int
lb_loop_run_once(lb_loop *loop, int timeout_ms)
{
    struct epoll_event evs[64];
    uint32_t gens[64];
    int n = epoll_wait(loop->epfd, evs, 64, next_timeout(loop, timeout_ms));
    if (n < 0) {
        if (errno == EINTR)
            n = 0;
        else
            return -errno;
    }
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        gens[i] = fd < loop->nfds_cap ? loop->fds[fd].generation : 0;
    }
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == loop->wakefd) {
            uint64_t v;
            while (read(loop->wakefd, &v, sizeof(v)) > 0)
                ;
            if (loop->on_wakeup)
                loop->on_wakeup(loop, loop->on_wakeup_arg);
            continue;
        }
        if (fd == loop->sigfd) {
            drain_signals(loop);
            continue;
        }
        if (fd >= loop->nfds_cap)
            continue;
        fd_watch *w = &loop->fds[fd];
        if (!w->events || w->generation != gens[i])
            continue; /* unwatched (and maybe reused) by an earlier callback */
        int fired = 0;
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            fired |= LB_READABLE;
        if (evs[i].events & EPOLLOUT)
            fired |= LB_WRITABLE;
        fired &= w->events | LB_READABLE; /* errors always reach the callback */
        if (fired)
            w->cb(loop, fd, fired, w->arg);
    }
    run_timers(loop);
    if (loop->before_sleep)
        loop->before_sleep(loop, loop->before_sleep_arg);
    return 0;
}

int
lb_loop_run(lb_loop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int rc = lb_loop_run_once(loop, -1);
        if (rc)
            return rc;
    }
    return 0;
}

int
lb_loop_send_buf(lb_loop *loop, int fd, lb_buf *out, lb_fd_cb cb, void *arg)
{
    while (out->len > 0) {
        ssize_t w = send(fd, out->data, out->len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        lb_buf_consume(out, (size_t)w);
    }
    return lb_loop_watch(loop, fd, LB_READABLE | (out->len ? LB_WRITABLE : 0), cb, arg);
}
