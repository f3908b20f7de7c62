/*
 * test_objstore.c: one behavioural suite, run against file:// in a temp dir
 * and against s3:// on s3rver (path-style and virtual-hosted addressing):
 * put/get/overwrite, ranged get, head, listings longer than a page, prefix
 * and delimiter, delete, missing keys, multipart upload of an object larger
 * than the threshold, streaming both ways, awkward key characters, and bad
 * keys refused.
 *
 * Then what only one backend can show: for file://, injected fsync, write
 * and rename failures leave the old object intact and no temp file behind;
 * for s3://, against a scripted server on a thread: a 500 then success is
 * retried, and so is a request that timed out; XML errors become clear
 * messages; a failed part aborts the multipart upload; entity-escaped keys
 * and continuation tokens are parsed; credentials come from the
 * environment; bad URLs are refused.
 *
 * s3rver runs under node on a free loopback port with its own directory,
 * started once for the group and stopped by its pid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "log.h"
#include "objstore.h"
#include "testutil.h"

#define MIB (1024 * 1024)
#define BUCKET "lbtest"

/* --- group: temp dir and s3rver --- */

static char *tmp_root;
static pid_t s3rver_pid;
static int s3rver_port;
static int case_seq;

static int
group_setup(void **state)
{
    (void)state;
    tmp_root = tu_tempdir("objstore");
    if (!tmp_root)
        return -1;
    /* The failure tests log errors on purpose: keep them out of the way. */
    char logpath[PATH_MAX];
    snprintf(logpath, sizeof(logpath), "%s/test.log", tmp_root);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd >= 0)
        lb_log_set_fd(logfd);
    char data[PATH_MAX], log[PATH_MAX], script[PATH_MAX], port[16];
    snprintf(data, sizeof(data), "%s/s3rver", tmp_root);
    snprintf(log, sizeof(log), "%s/s3rver.log", tmp_root);
    snprintf(script, sizeof(script), "%s/node_modules/s3rver/bin/s3rver.js", tu_project_root());
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "s3rver is not installed at %s (run make deps)\n", script);
        return -1;
    }
    s3rver_port = tu_free_port();
    snprintf(port, sizeof(port), "%d", s3rver_port);
    /* --service-endpoint localhost: Host "<bucket>.s3.localhost" is virtual
     * hosted; "127.0.0.1" is path style. */
    /* The legacy provider: s3rver makes its continuation tokens with DES,
     * which OpenSSL 3 only has there. */
    char *argv[] = {"node",      "--openssl-legacy-provider",
                    script,      "-d",
                    data,        "-a",
                    "127.0.0.1", "-p",
                    port,        "--service-endpoint",
                    "localhost", "--configure-bucket",
                    BUCKET,      "-s",
                    NULL};
    s3rver_pid = tu_spawn(argv, log);
    if (s3rver_pid <= 0 || !tu_wait_port(s3rver_port, 20000)) {
        fprintf(stderr, "s3rver did not start; see %s\n", log);
        tu_stop(s3rver_pid, 2000);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    tu_stop(s3rver_pid, 5000);
    tu_rmdir(tmp_root);
    return 0;
}

/* --- per test: a fresh store of one kind --- */

typedef enum kind { FILE_STORE, S3_PATH, S3_VIRTUAL } kind;

typedef struct fixture {
    kind kind;
    lb_objstore *s;
    char url[1200];
    char dir[1024]; /* file://: the store's directory */
} fixture;

static lb_objstore_options
test_options(void)
{
    lb_objstore_options o = {0};
    o.access_key_id = "S3RVER";
    o.secret_access_key = "S3RVER";
    o.multipart_threshold = 6 * MIB;
    o.part_size = 5 * MIB;
    o.list_page_size = 3; /* listings of more than 3 keys need continuation tokens */
    o.http.retry_base_ms = 10;
    o.http.retry_max_ms = 50;
    o.http.timeout_ms = 20000;
    return o;
}

static int
setup_kind(void **state, kind k)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->kind = k;
    int n = ++case_seq;
    if (k == FILE_STORE) {
        snprintf(f->dir, sizeof(f->dir), "%s/file-%d/store", tmp_root, n);
        snprintf(f->url, sizeof(f->url), "file://%s", f->dir);
    } else if (k == S3_PATH) {
        snprintf(f->url, sizeof(f->url),
                 "s3://" BUCKET "/case%d/root?endpoint=http://127.0.0.1:%d&addressing=path", n,
                 s3rver_port);
    } else {
        snprintf(f->url, sizeof(f->url),
                 "s3://" BUCKET "/case%d/root?endpoint=http://s3.localhost:%d&addressing=virtual",
                 n, s3rver_port);
    }
    lb_objstore_options o = test_options();
    int rc = lb_objstore_open(f->url, &o, &f->s);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", f->url, lb_strerror(rc));
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
setup_file(void **state)
{
    return setup_kind(state, FILE_STORE);
}

static int
setup_s3_path(void **state)
{
    return setup_kind(state, S3_PATH);
}

static int
setup_s3_virtual(void **state)
{
    return setup_kind(state, S3_VIRTUAL);
}

static int
teardown_store(void **state)
{
    fixture *f = *state;
    lb_io = &lb_io_default;
    if (f) {
        lb_objstore_close(f->s);
        free(f);
    }
    return 0;
}

static unsigned char
pattern_byte(uint64_t i)
{
    return (unsigned char)((i * 167 + (i >> 11)) & 0xff);
}

static char *
pattern(size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)pattern_byte(i);
    return p;
}

#define ASSERT_OK(s, expr)                                                                         \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s (%s)", #expr, lb_err_name(rc_), lb_objstore_error(s));                \
    } while (0)

static void
put_str(lb_objstore *s, const char *key, const char *v)
{
    ASSERT_OK(s, lb_objstore_put(s, key, v, strlen(v)));
}

static void
assert_object(lb_objstore *s, const char *key, const void *want, size_t n)
{
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(s, lb_objstore_get(s, key, &b));
    if (b.len != n)
        fail_msg("object \"%s\" has %zu bytes, want %zu", key, b.len, n);
    if (n && memcmp(b.data, want, n) != 0)
        fail_msg("object \"%s\" differs", key);
    lb_buf_free(&b);
}

/* --- the shared suite --- */

static void
test_put_get_overwrite(void **state)
{
    fixture *f = *state;
    put_str(f->s, "t1/tl/wal/seg", "hello");
    assert_object(f->s, "t1/tl/wal/seg", "hello", 5);
    put_str(f->s, "t1/tl/wal/seg", "replaced, and longer");
    assert_object(f->s, "t1/tl/wal/seg", "replaced, and longer", 20);
    ASSERT_OK(f->s, lb_objstore_put(f->s, "empty", NULL, 0));
    assert_object(f->s, "empty", "", 0);
    const char bin[] = {'a', 0, 'b', 0, (char)0xff, '\n'};
    ASSERT_OK(f->s, lb_objstore_put(f->s, "bin", bin, sizeof(bin)));
    assert_object(f->s, "bin", bin, sizeof(bin));
    /* get appends */
    lb_buf b = LB_BUF_INIT;
    lb_buf_append_str(&b, ">>");
    ASSERT_OK(f->s, lb_objstore_get(f->s, "t1/tl/wal/seg", &b));
    assert_string_equal(b.data, ">>replaced, and longer");
    lb_buf_free(&b);
}

static void
test_ranged_get(void **state)
{
    fixture *f = *state;
    char *p = pattern(1000);
    ASSERT_OK(f->s, lb_objstore_put(f->s, "layers/l1", p, 1000));
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 10, 20, &b));
    assert_int_equal(b.len, 20);
    assert_memory_equal(b.data, p + 10, 20);
    lb_buf_reset(&b);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 0, 1, &b));
    assert_int_equal(b.len, 1);
    assert_int_equal((unsigned char)b.data[0], pattern_byte(0));
    lb_buf_reset(&b);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 990, 100, &b)); /* clamped */
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, p + 990, 10);
    lb_buf_reset(&b);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 1000, 5, &b)); /* at the end */
    assert_int_equal(b.len, 0);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 5000, 5, &b)); /* past it */
    assert_int_equal(b.len, 0);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 3, 0, &b)); /* nothing */
    assert_int_equal(b.len, 0);
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "layers/l1", 0, UINT64_MAX, &b)); /* all */
    assert_int_equal(b.len, 1000);
    assert_memory_equal(b.data, p, 1000);
    assert_int_equal(lb_objstore_get_range(f->s, "layers/nope", 0, 10, &b), LB_ENOTFOUND);
    assert_int_equal(lb_objstore_get_range(f->s, "layers/nope", 0, 0, &b), LB_ENOTFOUND);
    assert_int_equal(b.len, 1000); /* a failed get leaves the buffer as it was */
    lb_buf_free(&b);
    free(p);
}

static void
test_head(void **state)
{
    fixture *f = *state;
    put_str(f->s, "index/i", "version one");
    lb_objstore_stat st1, st2;
    ASSERT_OK(f->s, lb_objstore_head(f->s, "index/i", &st1));
    assert_int_equal(st1.size, 11);
    assert_true(st1.etag[0] != '\0');
    assert_null(strchr(st1.etag, '"'));
    put_str(f->s, "index/i", "version two!");
    ASSERT_OK(f->s, lb_objstore_head(f->s, "index/i", &st2));
    assert_int_equal(st2.size, 12);
    assert_string_not_equal(st1.etag, st2.etag);
    assert_int_equal(lb_objstore_head(f->s, "index/missing", &st2), LB_ENOTFOUND);
    /* A "directory" is not an object. */
    assert_int_equal(lb_objstore_head(f->s, "index", &st2), LB_ENOTFOUND);
}

static void
assert_keys(const lb_objstore_listing *l, const char *const *want, size_t n)
{
    if (l->nobjects != n) {
        for (size_t i = 0; i < l->nobjects; i++)
            fprintf(stderr, "  listed: %s\n", l->objects[i].key);
        fail_msg("listed %zu objects, want %zu", l->nobjects, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->objects[i].key, want[i]);
}

static void
assert_prefixes(const lb_objstore_listing *l, const char *const *want, size_t n)
{
    if (l->nprefixes != n) {
        for (size_t i = 0; i < l->nprefixes; i++)
            fprintf(stderr, "  prefix: %s\n", l->prefixes[i]);
        fail_msg("listed %zu prefixes, want %zu", l->nprefixes, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->prefixes[i], want[i]);
}

static void
test_list_across_pages(void **state)
{
    fixture *f = *state;
    char key[32];
    /* Put in reverse so that the order comes from the store. */
    for (int i = 9; i >= 0; i--) {
        snprintf(key, sizeof(key), "l/k%02d", i);
        ASSERT_OK(f->s, lb_objstore_put(f->s, key, key, (size_t)i + 1));
    }
    put_str(f->s, "l2/x", "x");
    put_str(f->s, "m", "m");
    lb_objstore_listing l;
    ASSERT_OK(f->s, lb_objstore_list(f->s, "l/", NULL, &l));
    const char *want[] = {"l/k00", "l/k01", "l/k02", "l/k03", "l/k04",
                          "l/k05", "l/k06", "l/k07", "l/k08", "l/k09"};
    assert_keys(&l, want, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(l.objects[i].size, i + 1);
    assert_int_equal(l.nprefixes, 0);
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, "l", NULL, &l)); /* a partial component */
    assert_int_equal(l.nobjects, 11);
    assert_string_equal(l.objects[10].key, "l2/x");
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, NULL, NULL, &l));
    assert_int_equal(l.nobjects, 12);
    assert_string_equal(l.objects[11].key, "m");
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, "nothing/", NULL, &l));
    assert_int_equal(l.nobjects, 0);
    lb_objstore_list_free(&l);
}

static void
test_list_prefix_and_delimiter(void **state)
{
    fixture *f = *state;
    const char *keys[] = {"t/tl/wal/000", "t/tl/wal/001", "t/tl/layers/a",    "t/tl/index/i",
                          "t/tl/top",     "t/other/x",    "t/tl/wal/sub/deep"};
    for (size_t i = 0; i < 7; i++)
        put_str(f->s, keys[i], keys[i]);
    lb_objstore_listing l;
    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/tl/", "/", &l));
    const char *objs[] = {"t/tl/top"};
    const char *pfx[] = {"t/tl/index/", "t/tl/layers/", "t/tl/wal/"};
    assert_keys(&l, objs, 1);
    assert_prefixes(&l, pfx, 3);
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/", "/", &l));
    const char *pfx2[] = {"t/other/", "t/tl/"};
    assert_keys(&l, NULL, 0);
    assert_prefixes(&l, pfx2, 2);
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/tl/wal/0", "/", &l));
    const char *objs3[] = {"t/tl/wal/000", "t/tl/wal/001"};
    assert_keys(&l, objs3, 2);
    assert_int_equal(l.nprefixes, 0);
    lb_objstore_list_free(&l);

    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/tl/wal/", "/", &l));
    const char *pfx4[] = {"t/tl/wal/sub/"};
    assert_keys(&l, objs3, 2);
    assert_prefixes(&l, pfx4, 1);
    lb_objstore_list_free(&l);

    /* A delimiter other than '/'. */
    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/tl/wal/", "0", &l));
    const char *objs5[] = {"t/tl/wal/sub/deep"};
    const char *pfx5[] = {"t/tl/wal/0"};
    assert_keys(&l, objs5, 1);
    assert_prefixes(&l, pfx5, 1);
    lb_objstore_list_free(&l);
}

static void
test_delete(void **state)
{
    fixture *f = *state;
    put_str(f->s, "d/a/obj", "x");
    put_str(f->s, "d/b", "y");
    ASSERT_OK(f->s, lb_objstore_delete(f->s, "d/a/obj"));
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_objstore_get(f->s, "d/a/obj", &b), LB_ENOTFOUND);
    assert_int_equal(lb_objstore_head(f->s, "d/a/obj", NULL), LB_ENOTFOUND);
    ASSERT_OK(f->s, lb_objstore_delete(f->s, "d/a/obj")); /* again */
    ASSERT_OK(f->s, lb_objstore_delete(f->s, "never/there"));
    lb_objstore_listing l;
    ASSERT_OK(f->s, lb_objstore_list(f->s, "d/", "/", &l));
    const char *want[] = {"d/b"};
    assert_keys(&l, want, 1);
    assert_int_equal(l.nprefixes, 0); /* no empty "d/a/" left over */
    lb_objstore_list_free(&l);
    assert_object(f->s, "d/b", "y", 1);
    lb_buf_free(&b);
}

static int
count_write(void *arg, const char *bytes, size_t n)
{
    (void)bytes;
    *(size_t *)arg += n;
    return 0;
}

static void
test_missing_key(void **state)
{
    fixture *f = *state;
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_objstore_get(f->s, "no/such/key", &b), LB_ENOTFOUND);
    assert_int_equal(b.len, 0);
    assert_non_null(strstr(lb_objstore_error(f->s), "no/such/key"));
    size_t n = 0;
    assert_int_equal(lb_objstore_get_stream(f->s, "no/such/key", count_write, &n), LB_ENOTFOUND);
    assert_int_equal(n, 0); /* the error body never reaches the sink */
    lb_buf_free(&b);
}

static void
test_bad_keys_are_refused(void **state)
{
    fixture *f = *state;
    char long_key[LB_OBJSTORE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    const char *bad[] = {"",  "/abs", "a//b",      "a/../b",     "..",         "a/./b", "a/",
                         ".", "x\ny", "tab\there", ".lbtmp-1-2", "d/.lbtmp-x", long_key};
    lb_buf b = LB_BUF_INIT;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lb_objstore_put(f->s, bad[i], "v", 1) != -EINVAL)
            fail_msg("put of bad key #%zu was accepted", i);
        assert_non_null(strstr(lb_objstore_error(f->s), "invalid object key"));
        assert_int_equal(lb_objstore_get(f->s, bad[i], &b), -EINVAL);
        assert_int_equal(lb_objstore_head(f->s, bad[i], NULL), -EINVAL);
        assert_int_equal(lb_objstore_delete(f->s, bad[i]), -EINVAL);
        assert_int_equal(lb_objstore_get_range(f->s, bad[i], 0, 1, &b), -EINVAL);
    }
    assert_int_equal(lb_objstore_put(f->s, NULL, "v", 1), -EINVAL);
    const char *why = NULL;
    assert_int_equal(lb_objstore_check_key("a/../b", &why), -EINVAL);
    assert_non_null(strstr(why, ".."));
    assert_int_equal(lb_objstore_check_key("tenant/timeline/layers/000000-0016B3F10", &why), 0);

    lb_objstore_listing l;
    assert_int_equal(lb_objstore_list(f->s, "../", NULL, &l), -EINVAL);
    assert_int_equal(lb_objstore_list(f->s, "/x", NULL, &l), -EINVAL);
    assert_int_equal(lb_objstore_list(f->s, "a//", NULL, &l), -EINVAL);
    assert_int_equal(lb_objstore_list(f->s, "ok/", "\n", &l), -EINVAL);
    /* Nothing was written anywhere. */
    ASSERT_OK(f->s, lb_objstore_list(f->s, "", NULL, &l));
    assert_int_equal(l.nobjects, 0);
    lb_objstore_list_free(&l);
    if (f->kind == FILE_STORE) {
        char esc[PATH_MAX];
        snprintf(esc, sizeof(esc), "%s/../b", f->dir);
        assert_int_equal(access(esc, F_OK), -1);
    }
    lb_buf_free(&b);
}

typedef struct pattern_source {
    uint64_t off, size;
} pattern_source;

static ssize_t
read_pattern(void *arg, char *dst, size_t cap)
{
    pattern_source *src = arg;
    /* Odd-sized reads, to cross part boundaries at odd places. */
    if (cap > 777777)
        cap = 777777;
    size_t n = src->size - src->off < cap ? (size_t)(src->size - src->off) : cap;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)pattern_byte(src->off + i);
    src->off += n;
    return (ssize_t)n;
}

typedef struct pattern_sink {
    uint64_t n;
    bool bad;
} pattern_sink;

static int
check_pattern(void *arg, const char *bytes, size_t n)
{
    pattern_sink *k = arg;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)bytes[i] != pattern_byte(k->n + i))
            k->bad = true;
    k->n += n;
    return 0;
}

static void
assert_pattern_object(lb_objstore *s, const char *key, uint64_t size)
{
    pattern_sink k = {0, false};
    ASSERT_OK(s, lb_objstore_get_stream(s, key, check_pattern, &k));
    assert_int_equal(k.n, size);
    assert_false(k.bad);
    lb_objstore_stat st;
    ASSERT_OK(s, lb_objstore_head(s, key, &st));
    assert_int_equal(st.size, size);
}

/* 12 MiB with 5 MiB parts above a 6 MiB threshold: three parts. */
static void
test_multipart_upload(void **state)
{
    fixture *f = *state;
    size_t size = 12 * MIB;
    char *p = pattern(size);
    ASSERT_OK(f->s, lb_objstore_put(f->s, "big/from-memory", p, size));
    assert_object(f->s, "big/from-memory", p, size);
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(f->s, lb_objstore_get_range(f->s, "big/from-memory", 5 * MIB - 3, 6, &b));
    assert_memory_equal(b.data, p + 5 * MIB - 3, 6); /* across a part boundary */
    lb_buf_free(&b);
    free(p);

    pattern_source src = {0, 12 * MIB + 3};
    ASSERT_OK(f->s, lb_objstore_put_stream(f->s, "big/from-stream", read_pattern, &src));
    assert_pattern_object(f->s, "big/from-stream", 12 * MIB + 3);

    /* Exactly the threshold: one PUT. */
    pattern_source at = {0, 6 * MIB};
    ASSERT_OK(f->s, lb_objstore_put_stream(f->s, "big/at-threshold", read_pattern, &at));
    assert_pattern_object(f->s, "big/at-threshold", 6 * MIB);

    /* From a file descriptor, from its current offset. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/fd-source-%d", tmp_root, case_seq);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char *q = pattern(7 * MIB);
    assert_int_equal(write(fd, "skip", 4), 4);
    assert_int_equal(write(fd, q, 7 * MIB), 7 * MIB);
    assert_int_equal(lseek(fd, 4, SEEK_SET), 4);
    ASSERT_OK(f->s, lb_objstore_put_fd(f->s, "big/from-fd", fd));
    close(fd);
    unlink(path);
    assert_pattern_object(f->s, "big/from-fd", 7 * MIB);
    free(q);
    assert_int_equal(lb_objstore_put_fd(f->s, "big/bad-fd", -1), -EBADF);
}

static ssize_t
failing_source(void *arg, char *dst, size_t cap)
{
    pattern_source *src = arg;
    if (src->off >= src->size)
        return -EIO;
    return read_pattern(arg, dst, cap);
}

static void
test_failing_source_keeps_old_object(void **state)
{
    fixture *f = *state;
    put_str(f->s, "s/obj", "old");
    pattern_source small = {0, 1000};
    assert_int_equal(lb_objstore_put_stream(f->s, "s/obj", failing_source, &small), -EIO);
    assert_object(f->s, "s/obj", "old", 3);
    pattern_source big = {0, 7 * MIB}; /* fails after the first part */
    assert_int_equal(lb_objstore_put_stream(f->s, "s/obj", failing_source, &big), -EIO);
    assert_non_null(strstr(lb_objstore_error(f->s), "the source failed"));
    assert_object(f->s, "s/obj", "old", 3);
}

static void
test_awkward_key_characters(void **state)
{
    fixture *f = *state;
    const char *keys[] = {"odd/a b+c", "odd/amp&lt;<tag>\"q'", "odd/pct%41%zz",
                          "odd/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "odd/semi;colon:eq=1,2~"};
    for (size_t i = 0; i < 5; i++)
        put_str(f->s, keys[i], keys[i]);
    for (size_t i = 0; i < 5; i++)
        assert_object(f->s, keys[i], keys[i], strlen(keys[i]));
    lb_objstore_listing l;
    ASSERT_OK(f->s, lb_objstore_list(f->s, "odd/", NULL, &l));
    assert_int_equal(l.nobjects, 5);
    /* bytewise order */
    const char *sorted[] = {"odd/a b+c", "odd/amp&lt;<tag>\"q'", "odd/pct%41%zz",
                            "odd/semi;colon:eq=1,2~", "odd/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"};
    assert_keys(&l, sorted, 5);
    lb_objstore_list_free(&l);
}

/* --- file:// only --- */

static int inject_fsync_errno, inject_write_errno, inject_rename_errno;

static ssize_t
inj_write(int fd, const void *p, size_t n)
{
    if (inject_write_errno) {
        errno = inject_write_errno;
        return -1;
    }
    return write(fd, p, n);
}

static int
inj_fsync(int fd)
{
    if (inject_fsync_errno) {
        errno = inject_fsync_errno;
        return -1;
    }
    return fsync(fd);
}

static int
inj_rename(const char *a, const char *b)
{
    if (inject_rename_errno) {
        errno = inject_rename_errno;
        return -1;
    }
    return rename(a, b);
}

/* Count files whose name starts with ".lbtmp-" under dir. */
static int
count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, ".lbtmp-", 7) == 0)
            n++;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_temp_files(sub);
    }
    closedir(d);
    return n;
}

static void
test_file_injected_failures_keep_old_object(void **state)
{
    fixture *f = *state;
    static lb_io_ops inject;
    inject = lb_io_default;
    inject.write = inj_write;
    inject.fsync = inj_fsync;
    inject.rename = inj_rename;
    put_str(f->s, "t/tl/index/current", "generation 1");

    struct {
        int *knob;
        int err;
        const char *step;
    } cases[] = {{&inject_fsync_errno, EIO, "fsync"},
                 {&inject_fsync_errno, ENOSPC, "fsync"},
                 {&inject_write_errno, ENOSPC, "write"},
                 {&inject_rename_errno, EXDEV, "rename"}};
    for (size_t i = 0; i < 4; i++) {
        lb_io = &inject;
        *cases[i].knob = cases[i].err;
        int rc = lb_objstore_put(f->s, "t/tl/index/current", "generation 2", 12);
        pattern_source src = {0, 300000};
        int rc2 = lb_objstore_put_stream(f->s, "t/tl/index/current", read_pattern, &src);
        *cases[i].knob = 0;
        lb_io = &lb_io_default;
        assert_int_equal(rc, LB_ESTORAGE);
        assert_int_equal(rc2, LB_ESTORAGE);
        const char *err = lb_objstore_error(f->s);
        if (!strstr(err, cases[i].step) || !strstr(err, strerror(cases[i].err)))
            fail_msg("case %zu: unclear error \"%s\"", i, err);
        assert_object(f->s, "t/tl/index/current", "generation 1", 12);
        assert_int_equal(count_temp_files(f->dir), 0);
    }
    /* A put into a new directory fails the same way and leaves no file. */
    lb_io = &inject;
    inject_fsync_errno = EIO;
    assert_int_equal(lb_objstore_put(f->s, "new/dir/obj", "x", 1), LB_ESTORAGE);
    inject_fsync_errno = 0;
    lb_io = &lb_io_default;
    assert_int_equal(lb_objstore_head(f->s, "new/dir/obj", NULL), LB_ENOTFOUND);
    assert_int_equal(count_temp_files(f->dir), 0);
    /* And the store works again afterwards. */
    put_str(f->s, "t/tl/index/current", "generation 3");
    assert_object(f->s, "t/tl/index/current", "generation 3", 12);
}

static void
test_file_layout_and_temp_files(void **state)
{
    fixture *f = *state;
    put_str(f->s, "t/tl/wal/000", "w");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/t/tl/wal/000", f->dir);
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &b), 0); /* the key is the path */
    assert_string_equal(b.data, "w");
    lb_buf_free(&b);
    /* A temp file left by a crash is invisible. */
    snprintf(path, sizeof(path), "%s/t/tl/wal/.lbtmp-99-1", f->dir);
    assert_int_equal(lb_write_file_atomic(path, "junk", 4), 0);
    lb_objstore_listing l;
    ASSERT_OK(f->s, lb_objstore_list(f->s, "t/", NULL, &l));
    const char *want[] = {"t/tl/wal/000"};
    assert_keys(&l, want, 1);
    lb_objstore_list_free(&l);
    unlink(path);
    /* Deleting the last object prunes the directories, not the root. */
    ASSERT_OK(f->s, lb_objstore_delete(f->s, "t/tl/wal/000"));
    snprintf(path, sizeof(path), "%s/t", f->dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(f->dir, F_OK), 0);
    /* An object where a directory must go is a clear error. */
    put_str(f->s, "a", "file");
    assert_int_equal(lb_objstore_put(f->s, "a/b", "x", 1), LB_ESTORAGE);
    assert_true(lb_objstore_error(f->s)[0] != '\0');
    assert_object(f->s, "a", "file", 4);
}

/* --- s3:// only: a scripted server --- */

typedef struct fake_req {
    char method[16];
    char target[1024];
    lb_buf headers; /* raw header block */
    lb_buf body;
} fake_req;

struct fake;
/* Write a full HTTP response for req (the nth, from 1) into out. */
typedef void (*fake_handler)(struct fake *fk, int n, const fake_req *req, lb_buf *out);

typedef struct fake {
    int lfd, port;
    pthread_t thread;
    atomic_int stop;
    atomic_int requests;
    fake_handler handler;
    pthread_mutex_t mu;
    char log[4096]; /* "METHOD target\n" per request */
    char last_auth[512];
} fake;

static bool
fake_wait(fake *fk, int fd)
{
    while (!atomic_load(&fk->stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
    return false;
}

static bool
fake_fill(fake *fk, int fd, lb_buf *in, size_t need)
{
    while (in->len < need) {
        if (!fake_wait(fk, fd))
            return false;
        char chunk[65536];
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r <= 0)
            return false;
        lb_buf_append(in, chunk, (size_t)r);
    }
    return true;
}

static bool
fake_read(fake *fk, int fd, lb_buf *in, fake_req *req)
{
    char *end;
    while (!(in->data && (end = strstr(in->data, "\r\n\r\n")) != NULL))
        if (!fake_fill(fk, fd, in, in->len + 1))
            return false;
    size_t hlen = (size_t)(end - in->data) + 4;
    sscanf(in->data, "%15s %1023s", req->method, req->target);
    lb_buf_reset(&req->headers);
    lb_buf_append(&req->headers, in->data, hlen);
    long clen = 0;
    const char *cl = strcasestr(req->headers.data, "\r\nContent-Length:");
    if (cl)
        clen = strtol(cl + 17, NULL, 10);
    lb_buf_consume(in, hlen);
    if (!fake_fill(fk, fd, in, (size_t)clen))
        return false;
    lb_buf_reset(&req->body);
    lb_buf_append(&req->body, in->data ? in->data : "", (size_t)clen);
    lb_buf_consume(in, (size_t)clen);
    return true;
}

static void *
fake_main(void *arg)
{
    fake *fk = arg;
    while (fake_wait(fk, fk->lfd)) {
        int fd = accept(fk->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        lb_buf in = LB_BUF_INIT, out = LB_BUF_INIT;
        fake_req req = {.headers = LB_BUF_INIT, .body = LB_BUF_INIT};
        while (fake_read(fk, fd, &in, &req)) {
            int n = atomic_fetch_add(&fk->requests, 1) + 1;
            pthread_mutex_lock(&fk->mu);
            size_t len = strlen(fk->log);
            snprintf(fk->log + len, sizeof(fk->log) - len, "%s %s\n", req.method, req.target);
            const char *auth = strcasestr(req.headers.data, "\r\nAuthorization: ");
            if (auth)
                snprintf(fk->last_auth, sizeof(fk->last_auth), "%.*s",
                         (int)strcspn(auth + 17, "\r"), auth + 17);
            pthread_mutex_unlock(&fk->mu);
            lb_buf_reset(&out);
            fk->handler(fk, n, &req, &out);
            size_t off = 0;
            while (off < out.len) {
                ssize_t w = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(fd);
        lb_buf_free(&in);
        lb_buf_free(&out);
        lb_buf_free(&req.headers);
        lb_buf_free(&req.body);
    }
    return NULL;
}

static fake *
fake_start(fake_handler h)
{
    fake *fk = calloc(1, sizeof(*fk));
    assert_non_null(fk);
    fk->handler = h;
    pthread_mutex_init(&fk->mu, NULL);
    fk->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fk->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fk->lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(fk->lfd, 16), 0);
    fk->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
    return fk;
}

static void
fake_stop(fake *fk)
{
    atomic_store(&fk->stop, 1);
    pthread_join(fk->thread, NULL);
    close(fk->lfd);
    pthread_mutex_destroy(&fk->mu);
    free(fk);
}

static void
reply(lb_buf *out, int status, const char *extra, const char *body)
{
    lb_buf_printf(out, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status, strlen(body),
                  extra ? extra : "", body);
}

static lb_objstore *
fake_store(fake *fk, const char *prefix, lb_objstore_options *o)
{
    char url[256];
    snprintf(url, sizeof(url), "s3://bucket/%s?endpoint=http://127.0.0.1:%d", prefix, fk->port);
    lb_objstore *s = NULL;
    int rc = lb_objstore_open(url, o, &s);
    if (rc)
        fail_msg("open %s: %s", url, lb_strerror(rc));
    return s;
}

static void
h_500_once(fake *fk, int n, const fake_req *req, lb_buf *out)
{
    (void)fk;
    (void)req;
    if (n == 1)
        reply(out, 500, NULL,
              "<Error><Code>InternalError</Code><Message>try again</Message></Error>");
    else
        reply(out, 200, "ETag: \"e1\"\r\n", "hello");
}

static void
test_s3_500_once_is_retried(void **state)
{
    (void)state;
    fake *fk = fake_start(h_500_once);
    lb_objstore_options o = test_options();
    o.access_key_id = "AKIDTEST";
    o.secret_access_key = "secret";
    lb_objstore *s = fake_store(fk, "pre", &o);
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(s, lb_objstore_get(s, "t/obj", &b));
    assert_string_equal(b.data, "hello");
    assert_int_equal(atomic_load(&fk->requests), 2);
    pthread_mutex_lock(&fk->mu);
    assert_string_equal(fk->log, "GET /bucket/pre/t/obj\nGET /bucket/pre/t/obj\n");
    assert_non_null(strstr(fk->last_auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
    assert_non_null(strstr(fk->last_auth, "/us-east-1/s3/aws4_request, SignedHeaders=host;"
                                          "x-amz-content-sha256;x-amz-date, Signature="));
    pthread_mutex_unlock(&fk->mu);
    lb_buf_free(&b);
    lb_objstore_close(s);
    fake_stop(fk);
}

static void
h_slow_once(fake *fk, int n, const fake_req *req, lb_buf *out)
{
    if (n == 1)
        usleep(800 * 1000); /* past the client's timeout: it gives up and retries */
    h_500_once(fk, 2, req, out);
}

static void
test_s3_timeout_is_retried(void **state)
{
    (void)state;
    fake *fk = fake_start(h_slow_once);
    lb_objstore_options o = test_options();
    o.http.timeout_ms = 600;
    lb_objstore *s = fake_store(fk, "pre", &o);
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(s, lb_objstore_get(s, "t/obj", &b));
    assert_string_equal(b.data, "hello");
    assert_int_equal(atomic_load(&fk->requests), 2);
    lb_buf_free(&b);
    lb_objstore_close(s);
    fake_stop(fk);
}

static void
h_errors(fake *fk, int n, const fake_req *req, lb_buf *out)
{
    (void)fk;
    (void)n;
    if (strstr(req->target, "denied"))
        reply(out, 403, NULL,
              "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
              "<Message>Access Denied &amp; logged</Message></Error>");
    else if (strstr(req->target, "nobucket"))
        reply(out, 404, NULL,
              "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not "
              "exist</Message></Error>");
    else if (strstr(req->target, "list-type=2"))
        reply(out, 200, NULL,
              "<ListBucketResult><Contents><Key>pre/x</Key></Contents>"
              "</ListBucketResult>"); /* no <Size> */
    else
        reply(out, 501, NULL, "not xml at all");
}

static void
test_s3_errors_are_clear(void **state)
{
    (void)state;
    fake *fk = fake_start(h_errors);
    lb_objstore_options o = test_options();
    lb_objstore *s = fake_store(fk, "pre", &o);
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_objstore_get(s, "denied", &b), LB_ESTORAGE);
    const char *err = lb_objstore_error(s);
    if (!strstr(err, "HTTP 403 AccessDenied: Access Denied & logged") || !strstr(err, "denied"))
        fail_msg("unclear error \"%s\"", err);
    assert_int_equal(atomic_load(&fk->requests), 1); /* a 4xx is not retried */
    /* A missing bucket is not a missing key. */
    assert_int_equal(lb_objstore_get(s, "nobucket/k", &b), LB_ESTORAGE);
    assert_non_null(strstr(lb_objstore_error(s), "NoSuchBucket"));
    assert_int_equal(lb_objstore_put(s, "other", "x", 1), LB_ESTORAGE);
    assert_non_null(strstr(lb_objstore_error(s), "HTTP 501"));
    lb_objstore_listing l;
    assert_int_equal(lb_objstore_list(s, "", NULL, &l), LB_ESTORAGE);
    assert_non_null(strstr(lb_objstore_error(s), "malformed"));
    lb_buf_free(&b);
    lb_objstore_close(s);
    fake_stop(fk);
}

typedef struct mp_state {
    atomic_int aborted;
    atomic_int parts;
} mp_state;
static mp_state mp;

static void
h_multipart_part_fails(fake *fk, int n, const fake_req *req, lb_buf *out)
{
    (void)fk;
    (void)n;
    if (strcmp(req->method, "POST") == 0 && strstr(req->target, "?uploads"))
        reply(out, 200, NULL,
              "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>pre/big</Key>"
              "<UploadId>up&amp;1</UploadId></InitiateMultipartUploadResult>");
    else if (strcmp(req->method, "PUT") == 0 && strstr(req->target, "partNumber=1&"))
        atomic_fetch_add(&mp.parts, 1), reply(out, 200, "ETag: \"p1\"\r\n", "");
    else if (strcmp(req->method, "PUT") == 0)
        reply(out, 400, NULL, "<Error><Code>EntityTooSmall</Code><Message>no</Message></Error>");
    else if (strcmp(req->method, "DELETE") == 0 && strstr(req->target, "uploadId=up%261"))
        atomic_fetch_add(&mp.aborted, 1), reply(out, 204, NULL, "");
    else
        reply(out, 500, NULL, "unexpected");
}

static void
test_s3_failed_part_aborts_upload(void **state)
{
    (void)state;
    fake *fk = fake_start(h_multipart_part_fails);
    lb_objstore_options o = test_options();
    lb_objstore *s = fake_store(fk, "pre", &o);
    char *p = pattern(12 * MIB);
    assert_int_equal(lb_objstore_put(s, "big", p, 12 * MIB), LB_ESTORAGE);
    assert_non_null(strstr(lb_objstore_error(s), "EntityTooSmall"));
    assert_int_equal(atomic_load(&mp.parts), 1);
    assert_int_equal(atomic_load(&mp.aborted), 1);
    free(p);
    lb_objstore_close(s);
    fake_stop(fk);
}

static void
h_listing(fake *fk, int n, const fake_req *req, lb_buf *out)
{
    (void)fk;
    (void)n;
    if (!strstr(req->target, "continuation-token="))
        reply(out, 200, NULL,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"x\">"
              "<Name>bucket</Name><Prefix>pre/</Prefix><KeyCount>2</KeyCount>"
              "<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
              "<NextContinuationToken>tok+/=1</NextContinuationToken>"
              "<Contents><Key>pre/z&lt;&gt;&quot;&apos;</Key><Size>3</Size>"
              "<ETag>&quot;e&quot;</ETag></Contents>"
              "<Contents>\n  <Key>pre/&#x43A;&#1083;</Key>\n  <Size>1</Size>\n</Contents>"
              "<CommonPrefixes><Prefix>pre/dir/</Prefix></CommonPrefixes>"
              "</ListBucketResult>");
    else if (strstr(req->target, "continuation-token=tok%2B%2F%3D1"))
        reply(out, 200, NULL,
              "<ListBucketResult><IsTruncated>false</IsTruncated>"
              "<Contents><Key>pre/a&amp;b</Key><Size>12345678901</Size></Contents>"
              "<CommonPrefixes><Prefix>pre/dir/</Prefix></CommonPrefixes>"
              "<CommonPrefixes><Prefix>pre/eir/</Prefix></CommonPrefixes>"
              "<Contents><Key/><Size>0</Size></Contents>"
              "</ListBucketResult>");
    else
        reply(out, 400, NULL, "<Error><Code>BadToken</Code></Error>");
}

static void
test_s3_listing_xml_and_tokens(void **state)
{
    (void)state;
    fake *fk = fake_start(h_listing);
    lb_objstore_options o = test_options();
    lb_objstore *s = fake_store(fk, "pre/", &o);
    lb_objstore_listing l;
    ASSERT_OK(s, lb_objstore_list(s, "", "/", &l));
    const char *want[] = {"a&b", "z<>\"'", "\xd0\xba\xd0\xbb"};
    assert_keys(&l, want, 3);
    assert_int_equal(l.objects[0].size, 12345678901ULL);
    const char *pfx[] = {"dir/", "eir/"}; /* the repeated prefix is listed once */
    assert_prefixes(&l, pfx, 2);
    lb_objstore_list_free(&l);
    assert_int_equal(atomic_load(&fk->requests), 2);
    pthread_mutex_lock(&fk->mu);
    assert_non_null(
        strstr(fk->log, "GET /bucket?delimiter=%2F&list-type=2&max-keys=3&prefix=pre%2F\n"));
    pthread_mutex_unlock(&fk->mu);
    lb_objstore_close(s);
    fake_stop(fk);
}

static void
test_s3_credentials_from_environment(void **state)
{
    (void)state;
    fake *fk = fake_start(h_500_once);
    setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    setenv("AWS_REGION", "eu-west-3", 1);
    lb_objstore_options o = test_options();
    o.access_key_id = o.secret_access_key = NULL;
    lb_objstore *s = fake_store(fk, "p", &o);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_REGION");
    lb_buf b = LB_BUF_INIT;
    ASSERT_OK(s, lb_objstore_get(s, "k", &b));
    pthread_mutex_lock(&fk->mu);
    assert_non_null(strstr(fk->last_auth, "Credential=AKIDFROMENV/"));
    assert_non_null(strstr(fk->last_auth, "/eu-west-3/s3/aws4_request"));
    assert_non_null(strstr(fk->last_auth, ";x-amz-security-token, Signature="));
    pthread_mutex_unlock(&fk->mu);
    lb_buf_free(&b);
    lb_objstore_close(s);
    fake_stop(fk);
}

static void
test_s3_dead_endpoint(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof(url), "s3://bucket/p?endpoint=http://127.0.0.1:%d", tu_free_port());
    lb_objstore_options o = test_options();
    o.http.max_attempts = 2;
    lb_objstore *s = NULL;
    ASSERT_OK(s, lb_objstore_open(url, &o, &s));
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_objstore_get(s, "k", &b), LB_ESTORAGE);
    assert_non_null(strstr(lb_objstore_error(s), "onnect"));
    lb_buf_free(&b);
    lb_objstore_close(s);
}

static void
test_bad_urls_are_refused(void **state)
{
    (void)state;
    lb_objstore_options o = test_options();
    const char *bad[] = {
        "ftp://bucket/x",
        "file://relative/path",
        "file:///tmp/x?query=1",
        "s3://Bucket/x",
        "s3://b/x",
        "s3://bucket/x?foo=1",
        "s3://bucket/x?access_key_id=AKID",
        "s3://bucket/x?endpoint=ftp://h",
        "s3://bucket/x?endpoint=http://h:1/path",
        "s3://bucket/x?endpoint=http://user@h:1",
        "s3://bucket/x?addressing=sideways",
        "s3://bucket/x?endpoint=http://127.0.0.1:9000&addressing=virtual",
        "s3://bucket/x?region=%zz",
        "s3://bucket/a/../b",
        "s3://bucket/a//b?endpoint=http://h:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lb_objstore *s = (lb_objstore *)1;
        int rc = lb_objstore_open(bad[i], &o, &s);
        if (rc != LB_EBADCONFIG)
            fail_msg("%s: got %s, want EBADCONFIG", bad[i], lb_err_name(rc));
        assert_null(s);
    }
    lb_objstore *s = NULL;
    assert_int_equal(lb_objstore_open(NULL, &o, &s), LB_EBADCONFIG);
    lb_objstore_options half = o;
    half.secret_access_key = NULL;
    assert_int_equal(lb_objstore_open("s3://bucket/x?endpoint=http://h:1", &half, &s),
                     LB_EBADCONFIG);
    lb_objstore_options tiny = o;
    tiny.part_size = MIB;
    assert_int_equal(lb_objstore_open("s3://bucket/x?endpoint=http://h:1", &tiny, &s),
                     LB_EBADCONFIG);
    /* And good ones open (no request is made at open). */
    ASSERT_OK(s, lb_objstore_open("s3://bucket.with-dots1/deep/pre/fix/?region=eu-west-1", &o, &s));
    assert_string_equal(lb_objstore_url(s),
                        "s3://bucket.with-dots1/deep/pre/fix/?region=eu-west-1");
    lb_objstore_close(s);
}

/* clang-format off */
#define FOR_ALL(t)                                                                                 \
    {#t "(file)", t, setup_file, teardown_store, NULL},                                            \
    {#t "(s3 path)", t, setup_s3_path, teardown_store, NULL},                                      \
    {#t "(s3 virtual)", t, setup_s3_virtual, teardown_store, NULL}
/* clang-format on */

int
main(void)
{
    const struct CMUnitTest tests[] = {
        FOR_ALL(test_put_get_overwrite),
        FOR_ALL(test_ranged_get),
        FOR_ALL(test_head),
        FOR_ALL(test_list_across_pages),
        FOR_ALL(test_list_prefix_and_delimiter),
        FOR_ALL(test_delete),
        FOR_ALL(test_missing_key),
        FOR_ALL(test_bad_keys_are_refused),
        FOR_ALL(test_multipart_upload),
        FOR_ALL(test_failing_source_keeps_old_object),
        FOR_ALL(test_awkward_key_characters),
        cmocka_unit_test_setup_teardown(test_file_injected_failures_keep_old_object, setup_file,
                                        teardown_store),
        cmocka_unit_test_setup_teardown(test_file_layout_and_temp_files, setup_file,
                                        teardown_store),
        cmocka_unit_test(test_s3_500_once_is_retried),
        cmocka_unit_test(test_s3_timeout_is_retried),
        cmocka_unit_test(test_s3_errors_are_clear),
        cmocka_unit_test(test_s3_failed_part_aborts_upload),
        cmocka_unit_test(test_s3_listing_xml_and_tokens),
        cmocka_unit_test(test_s3_credentials_from_environment),
        cmocka_unit_test(test_s3_dead_endpoint),
        cmocka_unit_test(test_bad_urls_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
