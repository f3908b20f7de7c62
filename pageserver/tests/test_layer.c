/*
 * test_layer.c: layers round-trip pages, relation sizes and files exactly;
 * a corrupted page, index or footer is reported (LB_ECRC), never returned
 * as data; a failed fsync leaves no layer behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "fileio.h"
#include "layer.h"
#include "testutil.h"

static void
make_page(uint8_t *page, uint32_t seed, bool random_bytes)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < PS_PAGE_SIZE; i++) {
        if (random_bytes) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            page[i] = (uint8_t)x;
        } else {
            page[i] = (uint8_t)(i % 64 < 8 ? seed : 0); /* compressible, like real pages */
        }
    }
}

static const ps_relkey REL_A = {1663, 5, 16384, 0};
static const ps_relkey REL_A_VM = {1663, 5, 16384, 2};
static const ps_relkey REL_B = {1663, 5, 16390, 0};

static void
write_sample(const char *path)
{
    ps_layer_info info = {.lsn = 0x3000028,
                          .redo_lsn = 0x2FFF000,
                          .prev_lsn = 0x1000000,
                          .created_unix_ms = 1700000000000ULL};
    ps_layer_writer *w;
    uint8_t page[PS_PAGE_SIZE];
    assert_int_equal(ps_layer_writer_new(path, &info, &w), 0);
    /* Out of order on purpose: the writer sorts. */
    for (uint32_t b = 50; b-- > 0;) {
        make_page(page, b, b % 7 == 0);
        assert_int_equal(ps_layer_add_page(w, &REL_A, b * 2, page), 0);
    }
    make_page(page, 999, false);
    assert_int_equal(ps_layer_add_page(w, &REL_B, 0, page), 0);
    make_page(page, 77, false);
    assert_int_equal(ps_layer_add_page(w, &REL_A_VM, 0, page), 0);
    assert_int_equal(ps_layer_add_rel_size(w, &REL_B, 1), 0);
    assert_int_equal(ps_layer_add_rel_size(w, &REL_A, 100), 0);
    assert_int_equal(ps_layer_add_rel_size(w, &REL_A_VM, 1), 0);
    assert_int_equal(ps_layer_add_file(w, "global/pg_control", "control-bytes", 13), 0);
    assert_int_equal(ps_layer_add_file(w, "pg_xact/0000", "", 0), 0);
    assert_int_equal(ps_layer_writer_finish(w), 0);
}

static void
test_roundtrip(void **state)
{
    (void)state;
    char *dir = tu_tempdir("layer");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/0000000003000028.layer", dir);
    write_sample(path);

    ps_layer *l;
    assert_int_equal(ps_layer_open(path, &l), 0);
    assert_true(ps_layer_get_info(l)->lsn == 0x3000028);
    assert_true(ps_layer_get_info(l)->redo_lsn == 0x2FFF000);
    assert_true(ps_layer_get_info(l)->prev_lsn == 0x1000000);
    assert_int_equal(ps_layer_npages(l), 52);
    uint8_t got[PS_PAGE_SIZE], want[PS_PAGE_SIZE];
    for (uint32_t b = 0; b < 50; b++) {
        make_page(want, b, b % 7 == 0);
        assert_int_equal(ps_layer_get_page(l, &REL_A, b * 2, got), 0);
        assert_memory_equal(got, want, PS_PAGE_SIZE);
        assert_int_equal(ps_layer_get_page(l, &REL_A, b * 2 + 1, got), LB_ENOTFOUND);
    }
    assert_true(ps_layer_has_page(l, &REL_A_VM, 0));
    assert_false(ps_layer_has_page(l, &REL_B, 1));
    /* Pages come out sorted by relation, fork, block. */
    ps_relkey k;
    uint32_t blk;
    ps_layer_page_key(l, 0, &k, &blk);
    assert_int_equal(ps_relkey_cmp(&k, &REL_A), 0);
    assert_int_equal(blk, 0);
    ps_layer_page_key(l, 50, &k, &blk);
    assert_int_equal(ps_relkey_cmp(&k, &REL_A_VM), 0);
    size_t n;
    const ps_rel_size *sizes = ps_layer_rel_sizes(l, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ps_relkey_cmp(&sizes[0].key, &REL_A), 0);
    assert_int_equal(sizes[0].nblocks, 100);
    assert_int_equal(ps_layer_nfiles(l), 2);
    assert_string_equal(ps_layer_file_name(l, 0), "global/pg_control");
    lb_buf f = LB_BUF_INIT;
    assert_int_equal(ps_layer_get_file(l, 0, &f), 0);
    assert_int_equal(f.len, 13);
    assert_memory_equal(f.data, "control-bytes", 13);
    lb_buf_reset(&f);
    assert_int_equal(ps_layer_get_file(l, 1, &f), 0);
    assert_int_equal(f.len, 0);
    lb_buf_free(&f);
    ps_layer_close(l);
    tu_rmdir(dir);
}

static void
flip(const char *path, long offset_from, int whence)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, offset_from, whence);
    int c = fgetc(fp);
    fseek(fp, -1, SEEK_CUR);
    fputc(c ^ 0x5A, fp);
    fclose(fp);
}

static void
test_corrupt_page_is_reported_not_returned(void **state)
{
    (void)state;
    char *dir = tu_tempdir("layer");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/l.layer", dir);
    write_sample(path);
    flip(path, 64 + 3, SEEK_SET); /* inside the first frame written: block 98 of REL_A */
    ps_layer *l;
    assert_int_equal(ps_layer_open(path, &l), 0); /* structure intact */
    uint8_t page[PS_PAGE_SIZE];
    memset(page, 0xEE, sizeof(page));
    assert_int_equal(ps_layer_get_page(l, &REL_A, 98, page), LB_ECRC);
    assert_int_equal(ps_layer_get_page(l, &REL_A, 96, page), 0); /* others still fine */
    ps_layer_close(l);
    tu_rmdir(dir);
}

static void
test_corrupt_structure_refused_at_open(void **state)
{
    (void)state;
    char *dir = tu_tempdir("layer");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/l.layer", dir);
    ps_layer *l;

    write_sample(path);
    flip(path, -64 - 10, SEEK_END); /* inside the file table */
    assert_int_equal(ps_layer_open(path, &l), LB_ECRC);

    write_sample(path);
    flip(path, -2, SEEK_END); /* footer magic */
    assert_int_equal(ps_layer_open(path, &l), LB_ECRC);

    write_sample(path);
    flip(path, 1, SEEK_SET); /* header magic */
    assert_int_equal(ps_layer_open(path, &l), LB_ECRC);

    write_sample(path);
    assert_int_equal(truncate(path, 5000), 0);
    assert_int_equal(ps_layer_open(path, &l), LB_ECRC);

    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(ps_layer_open(path, &l), LB_ECRC);

    snprintf(path, sizeof(path), "%s/missing.layer", dir);
    assert_int_equal(ps_layer_open(path, &l), -ENOENT);
    tu_rmdir(dir);
}

static void
test_duplicates_refused(void **state)
{
    (void)state;
    char *dir = tu_tempdir("layer");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/dup.layer", dir);
    ps_layer_info info = {.lsn = 1};
    ps_layer_writer *w;
    uint8_t page[PS_PAGE_SIZE] = {0};
    assert_int_equal(ps_layer_writer_new(path, &info, &w), 0);
    assert_int_equal(ps_layer_add_page(w, &REL_A, 3, page), 0);
    assert_int_equal(ps_layer_add_page(w, &REL_A, 3, page), 0);
    assert_int_equal(ps_layer_writer_finish(w), -EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    tu_rmdir(dir);
}

static int
failing_fsync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static void
test_failed_fsync_leaves_nothing(void **state)
{
    (void)state;
    char *dir = tu_tempdir("layer");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/f.layer", dir);
    lb_io_ops bad = lb_io_default;
    bad.fsync = failing_fsync;
    ps_layer_info info = {.lsn = 1};
    ps_layer_writer *w;
    uint8_t page[PS_PAGE_SIZE] = {1};
    assert_int_equal(ps_layer_writer_new(path, &info, &w), 0);
    assert_int_equal(ps_layer_add_page(w, &REL_A, 0, page), 0);
    lb_io = &bad;
    assert_int_equal(ps_layer_writer_finish(w), -EIO);
    lb_io = &lb_io_default;
    assert_int_equal(access(path, F_OK), -1);
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    tu_rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_corrupt_page_is_reported_not_returned),
        cmocka_unit_test(test_corrupt_structure_refused_at_open),
        cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_failed_fsync_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
