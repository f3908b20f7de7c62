/*
 * test_hostports.c: the forwarder carries bytes both ways to a target,
 * passes EOF on, refuses connections when a port has no ready endpoint, and
 * closes a port removed from the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
