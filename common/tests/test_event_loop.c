/*
 * test_event_loop.c: file events fire, unwatching inside a callback is safe,
 * timers fire in order and re-arm or stop, signals arrive as events, a
 * wakeup from another thread reaches the loop, and before-sleep runs once
 * per round after the events of that round; an LB_HANGUP watch ignores
 * data but reports the peer's going away.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"

typedef struct ctx {
    int reads, writes, timer_runs, before_sleeps, wakeups, signals;
    int order[8], norder;
    char got[64];
    int other_fd, first_fd;
    int64_t reads_at_sleep;
} ctx;

static void
on_read(lb_loop *loop, int fd, int events, void *arg)
{
    ctx *c = arg;
    assert_true(events & LB_READABLE);
    ssize_t n = read(fd, c->got, sizeof(c->got) - 1);
    if (n > 0)
        c->got[n] = '\0';
    c->reads++;
    /* Unwatch both fds, the other one possibly ready in this same round. */
    lb_loop_unwatch(loop, c->first_fd);
    if (c->other_fd >= 0)
        lb_loop_unwatch(loop, c->other_fd);
}

static void
before_sleep(lb_loop *loop, void *arg)
{
    (void)loop;
    ctx *c = arg;
    c->before_sleeps++;
    c->reads_at_sleep = c->reads;
}

static void
on_hangup(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    ctx *c = arg;
    assert_true(events & LB_READABLE);
    c->reads++;
}

static void
test_hangup_only_watch(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {.other_fd = -1};
    int sv[2];
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(lb_loop_watch(loop, sv[0], LB_HANGUP, on_hangup, &c), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(lb_loop_run_once(loop, 50), 0);
    assert_int_equal(c.reads, 0); /* data waiting is not an event */
    close(sv[1]);
    assert_int_equal(lb_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.reads, 1); /* the peer's close is */
    lb_loop_unwatch(loop, sv[0]);
    close(sv[0]);
    lb_loop_free(loop);
}

static void
test_fd_events_and_unwatch_inside_callback(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {.other_fd = -1};
    int p1[2], p2[2];
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    c.first_fd = p1[0];
    c.other_fd = p2[0];
    assert_int_equal(lb_loop_watch(loop, p1[0], LB_READABLE, on_read, &c), 0);
    assert_int_equal(lb_loop_watch(loop, p2[0], LB_READABLE, on_read, &c), 0);
    lb_loop_set_before_sleep(loop, before_sleep, &c);
    assert_int_equal(write(p1[1], "hello", 5), 5);
    assert_int_equal(write(p2[1], "world", 5), 5);
    assert_int_equal(lb_loop_run_once(loop, 1000), 0);
    /* Whichever ran first unwatched the other: exactly one read. */
    assert_int_equal(c.reads, 1);
    assert_int_equal(c.before_sleeps, 1);
    assert_int_equal(c.reads_at_sleep, 1); /* before-sleep ran after the events */
    assert_int_equal(lb_loop_run_once(loop, 50), 0);
    assert_int_equal(c.reads, 1); /* both unwatched now */
    close(p1[0]), close(p1[1]), close(p2[0]), close(p2[1]);
    lb_loop_free(loop);
}

static void
on_hup(lb_loop *loop, int fd, int events, void *arg)
{
    ctx *c = arg;
    char b[8];
    assert_true(events & LB_READABLE);
    assert_int_equal(read(fd, b, sizeof(b)), 0); /* EOF */
    c->reads++;
    lb_loop_unwatch(loop, fd);
}

static void
test_peer_close_is_reported_as_readable(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {0};
    int p[2];
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(lb_loop_watch(loop, p[0], LB_READABLE, on_hup, &c), 0);
    close(p[1]);
    assert_int_equal(lb_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.reads, 1);
    close(p[0]);
    lb_loop_free(loop);
}

static int64_t
timer_a(lb_loop *loop, uint64_t id, void *arg)
{
    (void)loop, (void)id;
    ctx *c = arg;
    c->order[c->norder++] = 'a';
    return -1;
}

static int64_t
timer_b(lb_loop *loop, uint64_t id, void *arg)
{
    (void)id;
    ctx *c = arg;
    c->order[c->norder++] = 'b';
    if (++c->timer_runs == 3) {
        lb_loop_stop(loop);
        return -1;
    }
    return 10; /* re-arm */
}

static void
test_timers_order_rearm_and_delete(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {0};
    uint64_t dead;
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(lb_loop_add_timer(loop, 30, timer_b, &c, NULL), 0);
    assert_int_equal(lb_loop_add_timer(loop, 5, timer_a, &c, NULL), 0);
    assert_int_equal(lb_loop_add_timer(loop, 1, timer_a, &c, &dead), 0);
    lb_loop_del_timer(loop, dead);
    int64_t t0 = lb_mono_ms();
    assert_int_equal(lb_loop_run(loop), 0);
    int64_t took = lb_mono_ms() - t0;
    assert_int_equal(c.norder, 4);
    assert_int_equal(c.order[0], 'a');
    assert_int_equal(c.order[1], 'b');
    assert_int_equal(c.order[3], 'b');
    assert_true(took >= 50); /* 30 + 10 + 10 */
    lb_loop_free(loop);
}

static void
on_signal(lb_loop *loop, int signo, void *arg)
{
    ctx *c = arg;
    assert_int_equal(signo, SIGUSR1);
    c->signals++;
    lb_loop_stop(loop);
}

static void
test_signal_arrives_as_event(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {0};
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(lb_loop_watch_signal(loop, SIGUSR1, on_signal, &c), 0);
    kill(getpid(), SIGUSR1); /* blocked: queued until the loop reads it */
    assert_int_equal(lb_loop_run(loop), 0);
    assert_int_equal(c.signals, 1);
    lb_loop_free(loop);
}

static void
on_wakeup(lb_loop *loop, void *arg)
{
    ctx *c = arg;
    c->wakeups++;
    lb_loop_stop(loop);
}

static void *
waker(void *arg)
{
    usleep(20000);
    lb_loop_wakeup(arg);
    lb_loop_wakeup(arg); /* coalesced with the first */
    return NULL;
}

static void
test_wakeup_from_another_thread(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {0};
    pthread_t t;
    assert_int_equal(lb_loop_new(&loop), 0);
    lb_loop_set_on_wakeup(loop, on_wakeup, &c);
    pthread_create(&t, NULL, waker, loop);
    pthread_join(t, NULL);
    assert_int_equal(lb_loop_run(loop), 0);
    assert_int_equal(c.wakeups, 1);
    lb_loop_free(loop);
}

static void
on_writable(lb_loop *loop, int fd, int events, void *arg)
{
    ctx *c = arg;
    assert_true(events & LB_WRITABLE);
    c->writes++;
    lb_loop_unwatch(loop, fd);
}

static void
test_writable_and_rewatch(void **state)
{
    (void)state;
    lb_loop *loop;
    ctx c = {.other_fd = -1, .first_fd = -1};
    int p[2];
    assert_int_equal(lb_loop_new(&loop), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(lb_loop_watch(loop, p[1], LB_WRITABLE, on_writable, &c), 0);
    assert_int_equal(lb_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.writes, 1);
    /* Watching again after unwatch works (EPOLL_CTL_ADD again). */
    assert_int_equal(lb_loop_watch(loop, p[1], LB_WRITABLE, on_writable, &c), 0);
    assert_int_equal(lb_loop_run_once(loop, 1000), 0);
    assert_int_equal(c.writes, 2);
    close(p[0]), close(p[1]);
    lb_loop_free(loop);
}

static int send_buf_events;

static void
on_send_buf(lb_loop *loop, int fd, int events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)arg;
    send_buf_events |= events;
}

/* lb_loop_send_buf: what the socket takes goes; the rest waits for
 * writability; a dead peer is an error, not a signal. */
static void
test_send_buf_partial_then_writable_then_dead_peer(void **state)
{
    (void)state;
    lb_loop *loop;
    assert_int_equal(lb_loop_new(&loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    lb_buf out = LB_BUF_INIT;
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 64; i++) /* 4 MiB: more than the socket buffers hold */
        assert_int_equal(lb_buf_append(&out, chunk, sizeof(chunk)), 0);
    size_t total = out.len;
    assert_int_equal(lb_loop_send_buf(loop, sv[0], &out, on_send_buf, NULL), 0);
    assert_true(out.len > 0 && out.len < total);
    /* drain the reader until the loop reports the writer writable */
    send_buf_events = 0;
    char sink[1 << 16];
    while (!(send_buf_events & LB_WRITABLE)) {
        assert_true(read(sv[1], sink, sizeof(sink)) > 0);
        assert_true(lb_loop_run_once(loop, 100) >= 0);
    }
    size_t before = out.len;
    assert_int_equal(lb_loop_send_buf(loop, sv[0], &out, on_send_buf, NULL), 0);
    assert_true(out.len < before);
    /* everything sent: only readability is watched, and nothing is left */
    while (out.len > 0) {
        assert_true(read(sv[1], sink, sizeof(sink)) > 0);
        assert_int_equal(lb_loop_send_buf(loop, sv[0], &out, on_send_buf, NULL), 0);
    }
    close(sv[1]);
    assert_int_equal(lb_buf_append(&out, "y", 1), 0);
    assert_int_equal(lb_loop_send_buf(loop, sv[0], &out, on_send_buf, NULL), -EPIPE);
    lb_loop_unwatch(loop, sv[0]);
    close(sv[0]);
    lb_buf_free(&out);
    lb_loop_free(loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_events_and_unwatch_inside_callback),
        cmocka_unit_test(test_hangup_only_watch),
        cmocka_unit_test(test_peer_close_is_reported_as_readable),
        cmocka_unit_test(test_timers_order_rearm_and_delete),
        cmocka_unit_test(test_signal_arrives_as_event),
        cmocka_unit_test(test_wakeup_from_another_thread),
        cmocka_unit_test(test_writable_and_rewatch),
        cmocka_unit_test(test_send_buf_partial_then_writable_then_dead_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
