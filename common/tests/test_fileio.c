/*
 * test_fileio.c: the atomic replace keeps the old content on every injected
 * failure (ENOSPC on write, EIO on fsync, failed rename), leaves no temp file
 * behind, and survives short writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "testutil.h"

static int fail_write_errno, fail_fsync_errno, fail_rename_errno, short_writes, fsync_calls;

static ssize_t
inj_write(int fd, const void *p, size_t n)
{
    if (fail_write_errno) {
        errno = fail_write_errno;
        return -1;
    }
    if (short_writes && n > 1)
        n = n / 2; /* a partial write, which must be continued */
    return write(fd, p, n);
}

static int
inj_fsync(int fd)
{
    fsync_calls++;
    if (fail_fsync_errno) {
        errno = fail_fsync_errno;
        return -1;
    }
    return fsync(fd);
}

static int
inj_rename(const char *a, const char *b)
{
    if (fail_rename_errno) {
        errno = fail_rename_errno;
        return -1;
    }
    return rename(a, b);
}

static lb_io_ops inject;

static int
setup(void **state)
{
    inject = lb_io_default;
    inject.write = inj_write;
    inject.fsync = inj_fsync;
    inject.rename = inj_rename;
    lb_io = &inject;
    fail_write_errno = fail_fsync_errno = fail_rename_errno = short_writes = fsync_calls = 0;
    *state = tu_tempdir("fileio");
    return *state ? 0 : -1;
}

static int
teardown(void **state)
{
    lb_io = &lb_io_default;
    tu_rmdir(*state);
    return 0;
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void
assert_content(const char *path, const char *want)
{
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &b), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    lb_buf_free(&b);
}

static void
test_atomic_write_replaces_and_fsyncs(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/state.json", (char *)*state);
    assert_int_equal(lb_write_file_atomic(path, "one", 3), 0);
    assert_content(path, "one");
    fsync_calls = 0;
    assert_int_equal(lb_write_file_atomic(path, "second", 6), 0);
    assert_content(path, "second");
    assert_int_equal(fsync_calls, 2); /* the file, then its directory */
    assert_int_equal(count_entries(*state), 1);
}

static void
test_failures_keep_old_content_and_leave_no_temp(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/state.json", (char *)*state);
    assert_int_equal(lb_write_file_atomic(path, "durable", 7), 0);

    fail_write_errno = ENOSPC;
    assert_int_equal(lb_write_file_atomic(path, "lost-1", 6), -ENOSPC);
    fail_write_errno = 0;
    assert_content(path, "durable");
    assert_int_equal(count_entries(*state), 1);

    fail_fsync_errno = EIO;
    assert_int_equal(lb_write_file_atomic(path, "lost-2", 6), -EIO);
    fail_fsync_errno = 0;
    assert_content(path, "durable");
    assert_int_equal(count_entries(*state), 1);

    fail_rename_errno = EXDEV;
    assert_int_equal(lb_write_file_atomic(path, "lost-3", 6), -EXDEV);
    fail_rename_errno = 0;
    assert_content(path, "durable");
    assert_int_equal(count_entries(*state), 1);
}

static void
test_short_writes_are_continued(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/big", (char *)*state);
    size_t n = 1 << 20;
    char *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    data[n] = '\0';
    short_writes = 1;
    assert_int_equal(lb_write_file_atomic(path, data, n), 0);
    short_writes = 0;
    assert_content(path, data);
    free(data);
}

static void
test_mkdir_p_and_rm_rf(void **state)
{
    char path[PATH_MAX], file[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/a/b/c", (char *)*state);
    assert_int_equal(lb_mkdir_p(path, 0755), 0);
    assert_int_equal(lb_mkdir_p(path, 0755), 0); /* existing is fine */
    snprintf(file, sizeof(file), "%s/f", path);
    assert_int_equal(lb_write_file_atomic(file, "x", 1), 0);
    assert_int_equal(lb_mkdir_p(file, 0755), -ENOTDIR); /* a file in the way */
    snprintf(path, sizeof(path), "%s/a", (char *)*state);
    assert_int_equal(lb_rm_rf(path), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(lb_rm_rf(path), 0); /* missing is fine */
}

static void
test_read_missing_file(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nope", (char *)*state);
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_read_file(path, &b), -ENOENT);
    lb_buf_free(&b);
}

static void
test_read_fd_from_its_offset_and_bad_fd(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/fd", (char *)*state);
    assert_int_equal(lb_write_file_atomic(path, "0123456789", 10), 0);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(lseek(fd, 4, SEEK_SET), 4);
    lb_buf b = LB_BUF_INIT;
    assert_int_equal(lb_buf_append_str(&b, "x"), 0);
    assert_int_equal(lb_read_fd(fd, &b), 0);
    assert_string_equal(b.data, "x456789");
    close(fd);
    assert_int_equal(lb_read_fd(fd, &b), -EBADF);
    lb_buf_free(&b);
}

static void
test_dirname(void **state)
{
    (void)state;
    char d[16];
    assert_int_equal(lb_dirname("/a/b/c", d, sizeof(d)), 0);
    assert_string_equal(d, "/a/b");
    assert_int_equal(lb_dirname("/c", d, sizeof(d)), 0);
    assert_string_equal(d, "/");
    assert_int_equal(lb_dirname("c", d, sizeof(d)), 0);
    assert_string_equal(d, ".");
    assert_int_equal(lb_dirname("/aaaaaaaaaaaaaaaaaaaaaaa/b", d, sizeof(d)), -ENAMETOOLONG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atomic_write_replaces_and_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_keep_old_content_and_leave_no_temp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_short_writes_are_continued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p_and_rm_rf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_fd_from_its_offset_and_bad_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirname, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
