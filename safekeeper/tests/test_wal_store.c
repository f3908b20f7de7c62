/*
 * test_wal_store.c: segments are PostgreSQL-named, full-size and zero
 * where unwritten, and written out at creation (no unwritten extents, which
 * would make every fsync write the inode too); writes become durable only
 * through sync; a failed fsync
 * poisons the store; a full disk fails the segment creation cleanly;
 * timeline switches copy the prefix; truncation zeroes the tail and drops
 * later segments and timelines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "testutil.h"
#include "wal_store.h"

#define SEG (1024 * 1024) /* 1 MiB segments keep the test small */

/* Counted on the test's own thread only: the store prepares the next
 * segment on a thread of its own, whose I/O is not the loop's. */
static atomic_int fsync_fail, fallocate_fail, fsyncs, loop_fallocates;
static pthread_t test_thread;

static int
inj_fsync(int fd)
{
    if (pthread_equal(pthread_self(), test_thread))
        fsyncs++;
    if (fsync_fail) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static int
inj_fallocate(int fd, off_t off, off_t len)
{
    if (pthread_equal(pthread_self(), test_thread))
        loop_fallocates++;
    if (fallocate_fail) {
        errno = ENOSPC;
        return -1;
    }
    return lb_io_default.fallocate(fd, off, len);
}

static lb_io_ops inject;

static int
setup(void **state)
{
    inject = lb_io_default;
    inject.fsync = inj_fsync;
    inject.fallocate = inj_fallocate;
    lb_io = &inject;
    fsync_fail = fallocate_fail = fsyncs = 0;
    *state = tu_tempdir("walstore");
    return *state ? 0 : -1;
}

static int
teardown(void **state)
{
    lb_io = &lb_io_default;
    tu_rmdir(*state);
    return 0;
}

static void
fill(char *buf, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(seed + i * 31);
}

static void
test_write_read_across_segments(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    size_t n = SEG + 5000;
    char *in = malloc(n), *out = malloc(n);
    fill(in, n, 1);
    lb_lsn start = 3 * SEG - 2000; /* crosses into segment 3 and 4 */
    assert_int_equal(sk_wal_store_write(st, 2, start, in, n), 0);
    assert_int_equal(sk_wal_store_sync(st), 0);
    assert_int_equal(sk_wal_store_read(st, 2, start, out, n), 0);
    assert_memory_equal(in, out, n);

    /* Files are named as PostgreSQL names them and are full size. */
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/000000020000000000000002", (char *)*state);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, SEG);
    snprintf(path, sizeof(path), "%s/000000020000000000000004", (char *)*state);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, SEG);

    /* Unwritten bytes read as zeros. */
    char z[100];
    assert_int_equal(sk_wal_store_read(st, 2, 4 * SEG + 10000, z, sizeof(z)), 0);
    for (size_t i = 0; i < sizeof(z); i++)
        assert_int_equal(z[i], 0);
    assert_int_equal(sk_wal_store_read(st, 3, start, out, 10), -ENOENT);

    sk_segment_id *ids;
    size_t count;
    assert_int_equal(sk_wal_store_list(st, &ids, &count), 0);
    assert_int_equal(count, 3);
    assert_int_equal(ids[0].segno, 2);
    assert_int_equal(ids[2].segno, 4);
    free(ids);
    sk_wal_store_close(st);

    /* Reopen: the data is still there. */
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    memset(out, 0, n);
    assert_int_equal(sk_wal_store_read(st, 2, start, out, n), 0);
    assert_memory_equal(in, out, n);
    sk_wal_store_close(st);
    free(in);
    free(out);
}

static void
test_new_segment_has_no_unwritten_extents(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    char buf[512];
    fill(buf, sizeof(buf), 5);
    assert_int_equal(sk_wal_store_write(st, 1, 0, buf, sizeof(buf)), 0);
    assert_int_equal(sk_wal_store_sync(st), 0);
    char path[PATH_MAX];
    assert_int_equal(sk_wal_store_segment_path(st, 1, 0, path, sizeof(path)), 0);
    sk_wal_store_close(st);

    enum { MAX_EXTENTS = 256 };
    struct fiemap *fm = calloc(1, sizeof(*fm) + MAX_EXTENTS * sizeof(struct fiemap_extent));
    assert_non_null(fm);
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = MAX_EXTENTS;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    int rc = ioctl(fd, FS_IOC_FIEMAP, fm);
    close(fd);
    if (rc != 0) { /* a file system without extent maps (tmpfs) */
        free(fm);
        skip();
    }
    assert_true(fm->fm_mapped_extents > 0);
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
        assert_false(fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN);
    free(fm);
}

static void
test_sync_fsyncs_each_dirty_segment_once(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    char buf[512];
    fill(buf, sizeof(buf), 2);
    assert_int_equal(sk_wal_store_write(st, 1, 100, buf, sizeof(buf)), 0); /* creates: 1 fsync */
    fsyncs = 0;
    for (int i = 0; i < 100; i++) /* many writes, one batch */
        assert_int_equal(sk_wal_store_write(st, 1, 1000 + i * 512, buf, sizeof(buf)), 0);
    assert_int_equal(fsyncs, 0); /* nothing durable yet */
    assert_int_equal(sk_wal_store_sync(st), 0);
    assert_int_equal(fsyncs, 2); /* the segment, then the directory of the new file */
    fsyncs = 0;
    assert_int_equal(sk_wal_store_sync(st), 0);
    assert_int_equal(fsyncs, 0); /* nothing dirty */
    sk_wal_store_close(st);
}

static void
test_fsync_failure_poisons(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    char buf[512];
    fill(buf, sizeof(buf), 3);
    assert_int_equal(sk_wal_store_write(st, 1, 0, buf, sizeof(buf)), 0);
    assert_int_equal(sk_wal_store_sync(st), 0);
    assert_int_equal(sk_wal_store_write(st, 1, 512, buf, sizeof(buf)), 0);
    fsync_fail = 1;
    assert_int_equal(sk_wal_store_sync(st), LB_EFSYNC);
    fsync_fail = 0;
    /* Never retried: the store stays poisoned even though fsync works again. */
    assert_true(sk_wal_store_poisoned(st));
    assert_int_equal(sk_wal_store_sync(st), LB_EFSYNC);
    assert_int_equal(sk_wal_store_write(st, 1, 1024, buf, sizeof(buf)), LB_EFSYNC);
    assert_int_equal(sk_wal_store_truncate(st, 1, 512), LB_EFSYNC);
    sk_wal_store_close(st);
}

static void
test_full_disk_fails_segment_creation_cleanly(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    char buf[512];
    fill(buf, sizeof(buf), 4);
    assert_int_equal(sk_wal_store_write(st, 1, SEG - 256, buf, 256), 0);
    fallocate_fail = 1;
    /* The write into a new segment fails before any byte is written... */
    assert_int_equal(sk_wal_store_write(st, 1, SEG, buf, sizeof(buf)), -ENOSPC);
    assert_false(sk_wal_store_has_segment(st, 1, 1));
    /* ...and no temp file is left behind. */
    sk_segment_id *ids;
    size_t n;
    assert_int_equal(sk_wal_store_list(st, &ids, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
    char cmd[PATH_MAX + 32];
    lb_buf out = LB_BUF_INIT;
    snprintf(cmd, sizeof(cmd), "ls %s | wc -l", (char *)*state);
    tu_run(cmd, &out);
    assert_int_equal(atoi(out.data), 1);
    lb_buf_free(&out);
    /* The store is not poisoned: space freed, writing works again. */
    fallocate_fail = 0;
    assert_false(sk_wal_store_poisoned(st));
    assert_int_equal(sk_wal_store_write(st, 1, SEG, buf, sizeof(buf)), 0);
    assert_int_equal(sk_wal_store_sync(st), 0);
    sk_wal_store_close(st);
}

static void
test_begin_tli_copies_prefix(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    size_t n = 3000;
    char *old = malloc(n), *got = malloc(n);
    fill(old, n, 5);
    assert_int_equal(sk_wal_store_write(st, 2, 5 * SEG, old, n), 0);
    assert_int_equal(sk_wal_store_sync(st), 0);
    lb_lsn switch_at = 5 * SEG + 1000;
    assert_int_equal(sk_wal_store_begin_tli(st, 3, 2, switch_at), 0);
    assert_int_equal(sk_wal_store_read(st, 3, 5 * SEG, got, n), 0);
    assert_memory_equal(got, old, 1000);  /* prefix copied from timeline 2 */
    for (size_t i = 1000; i < n; i++)     /* nothing after the switch point */
        assert_int_equal(got[i], 0);
    free(old);
    free(got);
    sk_wal_store_close(st);
}

static void
test_truncate_zeroes_tail_and_drops_later(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    size_t n = 2 * SEG;
    char *in = malloc(n), *out = malloc(n);
    fill(in, n, 6);
    assert_int_equal(sk_wal_store_write(st, 2, SEG, in, n), 0);         /* segs 1, 2 */
    assert_int_equal(sk_wal_store_write(st, 3, 4 * SEG, in, 100), 0);   /* later tli */
    assert_int_equal(sk_wal_store_sync(st), 0);
    lb_lsn end = SEG + 777;
    assert_int_equal(sk_wal_store_truncate(st, 2, end), 0);
    assert_true(sk_wal_store_has_segment(st, 2, 1));
    assert_false(sk_wal_store_has_segment(st, 2, 2));
    assert_false(sk_wal_store_has_segment(st, 3, 4));
    assert_int_equal(sk_wal_store_read(st, 2, SEG, out, SEG), 0);
    assert_memory_equal(out, in, 777);
    for (size_t i = 777; i < SEG; i++)
        if (out[i] != 0)
            fail_msg("byte %zu after the truncation point is not zero", i);

    /* Truncating at a segment boundary removes that segment. */
    assert_int_equal(sk_wal_store_write(st, 2, 2 * SEG, in, 10), 0);
    assert_int_equal(sk_wal_store_truncate(st, 2, 2 * SEG), 0);
    assert_false(sk_wal_store_has_segment(st, 2, 2));

    /* remove_before drops old segments of every timeline, but the kept one. */
    assert_int_equal(sk_wal_store_write(st, 3, 0, in, 10), 0);
    assert_int_equal(sk_wal_store_remove_before(st, 2, 1), 0);
    assert_true(sk_wal_store_has_segment(st, 2, 1));
    assert_false(sk_wal_store_has_segment(st, 3, 0));
    assert_int_equal(sk_wal_store_remove_before(st, 2, UINT64_MAX), 0);
    assert_false(sk_wal_store_has_segment(st, 2, 1));
    free(in);
    free(out);
    sk_wal_store_close(st);
}

static void
test_bad_segment_size_refused(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, 3 * 1024 * 1024, &st), -EINVAL);
    assert_int_equal(sk_wal_store_open(*state, 4096, &st), -EINVAL);
}

static void
test_next_segment_is_made_off_the_writing_thread(void **state)
{
    sk_wal_store *st;
    assert_int_equal(sk_wal_store_open(*state, SEG, &st), 0);
    char buf[512];
    fill(buf, sizeof(buf), 4);
    loop_fallocates = 0;
    assert_int_equal(sk_wal_store_write(st, 1, 0, buf, sizeof(buf)), 0);
    assert_int_equal(loop_fallocates, 1); /* the first segment: no one prepared it */
    /* Into the next segment: prepared meanwhile by the store's thread, so
     * the writer only renames it into place. */
    assert_int_equal(sk_wal_store_write(st, 1, SEG + 100, buf, sizeof(buf)), 0);
    assert_int_equal(loop_fallocates, 1);
    assert_true(sk_wal_store_has_segment(st, 1, 1));
    assert_int_equal(sk_wal_store_sync(st), 0);
    char back[512];
    assert_int_equal(sk_wal_store_read(st, 1, SEG + 100, back, sizeof(back)), 0);
    assert_memory_equal(back, buf, sizeof(buf));
    assert_int_equal(sk_wal_store_read(st, 1, SEG, back, 100), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(back[i], 0); /* a prepared segment is zeros */
    sk_wal_store_close(st);
    /* nothing prepared is left behind */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c prep", (char *)*state);
    lb_buf out = LB_BUF_INIT;
    tu_run(cmd, &out);
    assert_true(out.data && atoi(out.data) == 0);
    lb_buf_free(&out);
}

int
main(void)
{
    test_thread = pthread_self();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_segment_has_no_unwritten_extents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_fsyncs_each_dirty_segment_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_poisons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_fails_segment_creation_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_begin_tli_copies_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_zeroes_tail_and_drops_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_segment_size_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_segment_is_made_off_the_writing_thread, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
