/*
 * test_hostports.c: the forwarder carries bytes both ways to a target,
 * passes EOF on, refuses connections when a port has no ready endpoint, and
 * closes a port removed from the table; a reset on either side closes the
 * other side and both of the forwarder's fds, even when no more bytes would
 * pass to show it, and stopping the forwarder closes open connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostports.h"
#include "testutil.h"

/* An upstream that echoes each connection's bytes until EOF, then closes. */
static void *
echo_main(void *arg)
{
    int lfd = *(int *)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof(buf))) > 0)
            if (write(c, buf, (size_t)n) != n)
                break;
        close(c);
    }
}

static int
listen_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int
connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool
listening(dc_hostports *h, int port)
{
    json_t *ports = dc_hostports_listening(h);
    bool found = false;
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) found = found || json_integer_value(p) == port;
    json_decref(ports);
    return found;
}

static void
wait_listening(dc_hostports *h, int port, bool want)
{
    for (int i = 0; i < 500 && listening(h, port) != want; i++)
        usleep(10000);
    assert_true(listening(h, port) == want);
}

/* Open fds of this process (the forwarder is a thread of it). */
static int
fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

/* Wait (bounded) for the forwarder to reach want open fds. */
static void
wait_fds(int want)
{
    for (int i = 0; i < 1000 && fd_count() != want; i++)
        usleep(10000);
    assert_int_equal(fd_count(), want);
}

static void
reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

typedef struct {
    dc_hostports *h;
    int up_lfd, host_port;
} fwd_fixture;

static void
fwd_start(fwd_fixture *f)
{
    int up_port = tu_free_port();
    f->host_port = tu_free_port();
    f->up_lfd = listen_local(up_port);
    assert_int_equal(dc_hostports_start(NULL, 0, &f->h), 0);
    char key[16], target[64];
    snprintf(key, sizeof(key), "%d", f->host_port);
    snprintf(target, sizeof(target), "127.0.0.1:%d", up_port);
    json_t *table = json_pack("{s:[s]}", key, target);
    dc_hostports_set(f->h, table);
    json_decref(table);
    wait_listening(f->h, f->host_port, true);
}

/* A client connection through the forwarder and the upstream's end of it;
 * one byte each way proves the pair is up. */
static void
fwd_connect(fwd_fixture *f, int *client, int *upstream)
{
    *client = connect_local(f->host_port);
    assert_true(*client >= 0);
    *upstream = accept(f->up_lfd, NULL, NULL);
    assert_true(*upstream >= 0);
    struct timeval tv = {10, 0};
    setsockopt(*upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c = 'x';
    assert_int_equal(write(*client, &c, 1), 1);
    assert_int_equal(read(*upstream, &c, 1), 1);
    assert_int_equal(write(*upstream, &c, 1), 1);
    assert_int_equal(read(*client, &c, 1), 1);
}

static void
fwd_stop(fwd_fixture *f)
{
    dc_hostports_stop(f->h);
    close(f->up_lfd);
}

/* The client half-closes (EOF reaches the upstream), then resets: the
 * forwarder is not reading the client any more and nothing else moves, yet
 * it must close both of its fds. */
static void
test_client_reset_after_eof(void **state)
{
    (void)state;
    fwd_fixture f;
    fwd_start(&f);
    int base = fd_count();
    int c, u;
    fwd_connect(&f, &c, &u);
    assert_int_equal(fd_count(), base + 4); /* c, u, and the forwarder's two */
    shutdown(c, SHUT_WR);
    char ch;
    assert_int_equal(read(u, &ch, 1), 0);
    reset_close(c);
    wait_fds(base + 1); /* only u: the forwarder closed both sides */
    close(u);
    fwd_stop(&f);
}

/* The mirror image: the upstream half-closes, then resets. */
static void
test_upstream_reset_after_eof(void **state)
{
    (void)state;
    fwd_fixture f;
    fwd_start(&f);
    int base = fd_count();
    int c, u;
    fwd_connect(&f, &c, &u);
    shutdown(u, SHUT_WR);
    char ch;
    assert_int_equal(read(c, &ch, 1), 0);
    reset_close(u);
    wait_fds(base + 1);
    close(c);
    fwd_stop(&f);
}

/* A reset while the other side is idle and both are open closes the pair
 * and shows the client the end. */
static void
test_upstream_reset_closes_client(void **state)
{
    (void)state;
    fwd_fixture f;
    fwd_start(&f);
    int base = fd_count();
    int c, u;
    fwd_connect(&f, &c, &u);
    reset_close(u);
    char ch;
    assert_true(read(c, &ch, 1) <= 0);
    wait_fds(base + 1);
    close(c);
    fwd_stop(&f);
}

/* Stopping the forwarder closes the connections it carries. */
static void
test_stop_closes_pairs(void **state)
{
    (void)state;
    int base = fd_count();
    fwd_fixture f;
    fwd_start(&f);
    int c, u;
    fwd_connect(&f, &c, &u);
    fwd_stop(&f);
    assert_int_equal(fd_count(), base + 2); /* c and u */
    char ch;
    assert_true(read(c, &ch, 1) <= 0);
    close(c);
    close(u);
}

static void
test_forwarding(void **state)
{
    (void)state;
    int up_port = tu_free_port(), host_port = tu_free_port();
    int lfd = listen_local(up_port);
    pthread_t th;
    pthread_create(&th, NULL, echo_main, &lfd);

    dc_hostports *h;
    assert_int_equal(dc_hostports_start(NULL, 0, &h), 0);
    char key[16], target[64];
    snprintf(key, sizeof(key), "%d", host_port);
    snprintf(target, sizeof(target), "127.0.0.1:%d", up_port);
    json_t *table = json_pack("{s:[s]}", key, target);
    dc_hostports_set(h, table);
    wait_listening(h, host_port, true);

    /* 1 MiB through and back: more than one buffer each way */
    int fd = connect_local(host_port);
    assert_true(fd >= 0);
    size_t total = 1 << 20;
    char *out = malloc(total), *in = malloc(total);
    for (size_t i = 0; i < total; i++)
        out[i] = (char)(i * 7 + 3);
    size_t sent = 0, got = 0;
    while (sent < total) {
        ssize_t n = write(fd, out + sent, total - sent < 65536 ? total - sent : 65536);
        assert_true(n > 0);
        sent += (size_t)n;
        /* read what came back so far, so neither side's buffers fill up */
        while (got < sent) {
            ssize_t r = recv(fd, in + got, total - got, MSG_DONTWAIT);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    shutdown(fd, SHUT_WR); /* EOF passes through: the echo closes, so do we */
    for (;;) {
        ssize_t r = read(fd, in + got, total - got);
        if (r <= 0) {
            assert_int_equal(r, 0);
            break;
        }
        got += (size_t)r;
    }
    assert_int_equal(got, total);
    assert_memory_equal(in, out, total);
    close(fd);
    free(in);
    free(out);

    /* no ready endpoint: the connection is accepted and closed at once */
    json_decref(table);
    table = json_pack("{s:[]}", key);
    dc_hostports_set(h, table);
    for (int i = 0; i < 100; i++) {
        fd = connect_local(host_port);
        char c;
        ssize_t r = fd >= 0 ? read(fd, &c, 1) : -1;
        if (fd >= 0)
            close(fd);
        if (r == 0)
            break;
        usleep(10000);
        assert_true(i < 99);
    }

    /* removed from the table: nothing listens */
    json_decref(table);
    table = json_object();
    dc_hostports_set(h, table);
    wait_listening(h, host_port, false);
    assert_int_equal(connect_local(host_port), -1);
    json_decref(table);
    dc_hostports_stop(h);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(th, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forwarding),
        cmocka_unit_test(test_client_reset_after_eof),
        cmocka_unit_test(test_upstream_reset_after_eof),
        cmocka_unit_test(test_upstream_reset_closes_client),
        cmocka_unit_test(test_stop_closes_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
