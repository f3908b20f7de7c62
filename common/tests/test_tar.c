/*
 * test_tar.c: archives we write are read by GNU tar with identical content,
 * archives GNU tar writes (ustar, gnu and pax formats, long names) are read
 * by our reader in any chunking, and hostile archives (bad checksum, "..",
 * absolute names, truncation) are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "fileio.h"
#include "tar.h"
#include "testutil.h"

static int
sink_buf(void *arg, const void *bytes, size_t n)
{
    return lb_buf_append(arg, bytes, n);
}

/* What the reader saw: "F name size\n" / "D name\n" / "L name -> target\n",
 * plus all file data concatenated. */
typedef struct seen {
    lb_buf listing;
    lb_buf data;
    int ends;
} seen;

static int
on_entry(void *arg, const lb_tar_entry *e)
{
    seen *s = arg;
    if (e->type == LB_TAR_FILE)
        return lb_buf_printf(&s->listing, "F %s %llu\n", e->name, (unsigned long long)e->size);
    if (e->type == LB_TAR_DIR)
        return lb_buf_printf(&s->listing, "D %s\n", e->name);
    return lb_buf_printf(&s->listing, "L %s -> %s\n", e->name, e->linkname);
}

static int
on_data(void *arg, const lb_tar_entry *e, const void *bytes, size_t n)
{
    (void)e;
    return lb_buf_append(&((seen *)arg)->data, bytes, n);
}

static int
on_end(void *arg, const lb_tar_entry *e)
{
    (void)e;
    ((seen *)arg)->ends++;
    return 0;
}

static const lb_tar_reader_ops ops = {on_entry, on_data, on_end};

/* Read archive in chunks of chunk bytes (0 = random sizes). */
static int
read_all(const lb_buf *tar, size_t chunk, seen *s)
{
    lb_tar_reader *r;
    assert_int_equal(lb_tar_reader_new(&ops, s, &r), 0);
    int rc = 0;
    for (size_t off = 0; off < tar->len && rc == 0;) {
        size_t n = chunk ? chunk : (size_t)(1 + rand() % 1500);
        if (n > tar->len - off)
            n = tar->len - off;
        rc = lb_tar_reader_feed(r, tar->data + off, n);
        off += n;
    }
    if (rc == 0 && !lb_tar_reader_done(r))
        rc = LB_ETRUNCATED;
    lb_tar_reader_free(r);
    return rc;
}

static char long_dir[300];

static void
build_archive(lb_buf *tar, char *big, size_t big_n)
{
    lb_tar_writer w;
    lb_tar_writer_init(&w, sink_buf, tar);
    assert_int_equal(lb_tar_add_dir(&w, "base", 0700, 1700000000), 0);
    assert_int_equal(lb_tar_add_file(&w, "base/PG_VERSION", "15\n", 3, 0600, 1700000000), 0);
    assert_int_equal(lb_tar_add_file(&w, "empty", "", 0, 0600, 1700000000), 0);
    assert_int_equal(lb_tar_begin_file(&w, "base/1/16384", big_n, 0600, 1700000000), 0);
    for (size_t off = 0; off < big_n; off += 1000)
        assert_int_equal(lb_tar_write(&w, big + off, big_n - off < 1000 ? big_n - off : 1000), 0);
    assert_int_equal(lb_tar_add_symlink(&w, "pg_tblspc/16500", "/srv/ts", 1700000000), 0);
    /* 150 chars: needs the ustar prefix. 280 chars: needs a pax header. */
    memset(long_dir, 'd', sizeof(long_dir));
    long_dir[120] = '/';
    long_dir[150] = '\0';
    assert_int_equal(lb_tar_add_file(&w, long_dir, "p", 1, 0644, 1700000000), 0);
    memset(long_dir, 'e', sizeof(long_dir));
    long_dir[90] = long_dir[181] = '/'; /* components below NAME_MAX */
    long_dir[279] = '\0';
    assert_int_equal(lb_tar_add_file(&w, long_dir, "x", 1, 0644, 1700000000), 0);
    assert_int_equal(lb_tar_finish(&w), 0);
    assert_int_equal(w.offset, tar->len);
    assert_int_equal(tar->len % 512, 0);
}

static void
test_gnu_tar_reads_what_we_write(void **state)
{
    (void)state;
    char *dir = tu_tempdir("tar");
    lb_buf tar = LB_BUF_INIT;
    size_t big_n = 3 * 8192 + 17;
    char *big = malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)(i * 7);
    build_archive(&tar, big, big_n);

    char path[PATH_MAX], cmd[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/a.tar", dir);
    assert_int_equal(lb_write_file_atomic(path, tar.data, tar.len), 0);
    snprintf(cmd, sizeof(cmd), "mkdir %s/x && tar -xf %s -C %s/x 2>&1", dir, path, dir);
    lb_buf out = LB_BUF_INIT;
    assert_int_equal(tu_run(cmd, &out), 0);
    assert_int_equal(out.len, 0); /* no warnings from GNU tar */

    lb_buf got = LB_BUF_INIT;
    snprintf(path, sizeof(path), "%s/x/base/1/16384", dir);
    assert_int_equal(lb_read_file(path, &got), 0);
    assert_int_equal(got.len, big_n);
    assert_memory_equal(got.data, big, big_n);
    lb_buf_reset(&got);
    snprintf(path, sizeof(path), "%s/x/%s", dir, long_dir);
    assert_int_equal(lb_read_file(path, &got), 0);
    assert_string_equal(got.data, "x");
    char target[64] = {0};
    snprintf(path, sizeof(path), "%s/x/pg_tblspc/16500", dir);
    assert_int_equal(readlink(path, target, sizeof(target) - 1), 7);
    assert_string_equal(target, "/srv/ts");

    lb_buf_free(&got);
    lb_buf_free(&out);
    lb_buf_free(&tar);
    free(big);
    tu_rmdir(dir);
}

static void
test_reader_roundtrip_any_chunking(void **state)
{
    (void)state;
    lb_buf tar = LB_BUF_INIT;
    size_t big_n = 20000;
    char *big = malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)(i * 13);
    build_archive(&tar, big, big_n);
    srand(3);
    size_t chunks[] = {1, 7, 511, 512, 513, 4096, 0, 0, 0};
    char *first = NULL;
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        seen s = {LB_BUF_INIT, LB_BUF_INIT, 0};
        assert_int_equal(read_all(&tar, chunks[c], &s), 0);
        assert_int_equal(s.ends, 5); /* five regular files */
        assert_int_equal(s.data.len, 3 + big_n + 2);
        assert_memory_equal(s.data.data + 3, big, big_n);
        if (!first)
            first = strdup(s.listing.data);
        else
            assert_string_equal(s.listing.data, first);
        lb_buf_free(&s.listing);
        lb_buf_free(&s.data);
    }
    assert_non_null(strstr(first, "D base\n"));
    assert_non_null(strstr(first, "L pg_tblspc/16500 -> /srv/ts\n"));
    assert_non_null(strstr(first, long_dir));
    free(first);
    free(big);
    lb_buf_free(&tar);
}

static void
test_we_read_what_gnu_tar_writes(void **state)
{
    (void)state;
    char *dir = tu_tempdir("tar");
    const char *formats[] = {"ustar", "gnu", "pax"};
    char cmd[PATH_MAX * 3];
    /* A tree with a 200-char path (GNU long name / pax path in gnu and pax). */
    snprintf(cmd, sizeof(cmd),
             "cd %s && mkdir -p src/sub && printf hello > src/sub/f && "
             "printf %%0200d 0 | tr 0 n > /dev/null && "
             "d=src/$(printf '%%0120d' 0 | tr 0 a)/$(printf '%%090d' 0 | tr 0 b) && "
             "mkdir -p $(dirname $d) && printf long > $d && ln -s sub/f src/link",
             dir);
    assert_int_equal(tu_run(cmd, NULL), 0);
    for (size_t i = 0; i < 3; i++) {
        lb_buf tar = LB_BUF_INIT;
        snprintf(cmd, sizeof(cmd), "cd %s && tar --format=%s -cf - src 2>/dev/null", dir,
                 formats[i]);
        int st = tu_run(cmd, &tar);
        if (i == 0 && st != 0) { /* ustar cannot hold the 213-char name: expected */
            lb_buf_free(&tar);
            continue;
        }
        assert_int_equal(st, 0);
        seen s = {LB_BUF_INIT, LB_BUF_INIT, 0};
        assert_int_equal(read_all(&tar, 0, &s), 0);
        assert_non_null(strstr(s.listing.data, "F src/sub/f 5\n"));
        assert_non_null(strstr(s.listing.data, "L src/link -> sub/f\n"));
        assert_non_null(strstr(s.listing.data, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 4\n"));
        assert_non_null(memmem(s.data.data, s.data.len, "hello", 5));
        assert_non_null(memmem(s.data.data, s.data.len, "long", 4));
        lb_buf_free(&s.listing);
        lb_buf_free(&s.data);
        lb_buf_free(&tar);
    }
    tu_rmdir(dir);
}

static void
test_hostile_archives_refused(void **state)
{
    (void)state;
    lb_buf tar = LB_BUF_INIT;
    lb_tar_writer w;
    lb_tar_writer_init(&w, sink_buf, &tar);
    /* The writer refuses unsafe names outright. */
    assert_int_equal(lb_tar_add_file(&w, "../etc/passwd", "x", 1, 0644, 0), LB_EPARSE);
    assert_int_equal(lb_tar_add_file(&w, "/etc/passwd", "x", 1, 0644, 0), LB_EPARSE);
    assert_int_equal(lb_tar_add_file(&w, "a/./b", "x", 1, 0644, 0), LB_EPARSE);
    assert_int_equal(tar.len, 0);

    /* Craft an archive with "a/../../x" by patching a good header. */
    assert_int_equal(lb_tar_add_file(&w, "a/bb/cc/x", "x", 1, 0644, 0), 0);
    assert_int_equal(lb_tar_finish(&w), 0);
    lb_buf evil = LB_BUF_INIT;
    lb_buf_append(&evil, tar.data, tar.len);
    memcpy(evil.data, "a/../../x", 9);
    seen s = {LB_BUF_INIT, LB_BUF_INIT, 0};
    assert_int_equal(read_all(&evil, 512, &s), LB_EPARSE); /* checksum first */
    /* Fix the checksum so the name check is what refuses it. */
    uint32_t sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : (uint8_t)evil.data[i];
    snprintf(evil.data + 148, 8, "%06o", sum);
    evil.data[155] = ' ';
    assert_int_equal(read_all(&evil, 512, &s), LB_EPARSE);
    assert_int_equal(s.listing.len, 0); /* no entry reached the caller */

    /* Truncated archive: not done. */
    lb_buf cut = LB_BUF_INIT;
    lb_buf_append(&cut, tar.data, 700);
    assert_int_equal(read_all(&cut, 100, &s), LB_ETRUNCATED);

    /* Writing more than announced, or finishing mid-file, is refused. */
    lb_buf other = LB_BUF_INIT;
    lb_tar_writer_init(&w, sink_buf, &other);
    assert_int_equal(lb_tar_begin_file(&w, "f", 2, 0644, 0), 0);
    assert_int_equal(lb_tar_write(&w, "abc", 3), LB_EPROTO);
    assert_int_equal(lb_tar_finish(&w), LB_EPROTO);

    /* Random garbage never crashes the reader. */
    srand(9);
    for (int it = 0; it < 2000; it++) {
        lb_buf g = LB_BUF_INIT;
        lb_buf_append(&g, tar.data, tar.len);
        for (int k = 0; k < 4; k++)
            g.data[rand() % (int)g.len] = (char)rand();
        seen gs = {LB_BUF_INIT, LB_BUF_INIT, 0};
        (void)read_all(&g, 0, &gs);
        lb_buf_free(&gs.listing);
        lb_buf_free(&gs.data);
        lb_buf_free(&g);
    }
    lb_buf_free(&s.listing);
    lb_buf_free(&s.data);
    lb_buf_free(&other);
    lb_buf_free(&cut);
    lb_buf_free(&evil);
    lb_buf_free(&tar);
}

/* One archive: a pax 'x' header whose data is ext, then file "f" holding "x". */
static void
pax_archive(const char *ext, size_t n, lb_buf *out)
{
    lb_buf file = LB_BUF_INIT;
    lb_tar_writer w;
    lb_tar_writer_init(&w, sink_buf, &file);
    assert_int_equal(lb_tar_add_file(&w, "f", "x", 1, 0644, 0), 0);
    assert_int_equal(lb_tar_finish(&w), 0);
    char h[512];
    memcpy(h, file.data, 512); /* a valid header to start from */
    memset(h, 0, 100);
    memcpy(h, "PaxHeaders/f", 12);
    snprintf(h + 124, 12, "%011o", (unsigned)n);
    h[156] = 'x';
    uint32_t sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : (uint8_t)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    lb_buf_reset(out);
    lb_buf_append(out, h, 512);
    lb_buf_append(out, ext, n);
    static const char zeros[512];
    lb_buf_append(out, zeros, (512 - n % 512) % 512);
    lb_buf_append(out, file.data, file.len);
    lb_buf_free(&file);
}

static void
test_pax_records_are_bounded_by_their_length(void **state)
{
    (void)state;
    lb_buf tar = LB_BUF_INIT;
    seen s = {LB_BUF_INIT, LB_BUF_INIT, 0};
    /* A well-formed record names the file. */
    const char good[] = "13 path=long\n";
    pax_archive(good, strlen(good), &tar);
    assert_int_equal(read_all(&tar, 512, &s), 0);
    assert_string_equal(s.listing.data, "F long 1\n");
    /* Leading white space before <len>: strtoul would skip it and find the
     * key past the record's end (an over-read of the buffer). Refused. */
    const char *bad[] = {
        "\n\n2 x",          /* no '=' anywhere: the search ran off the buffer */
        "\n\n\n\n\n5 a=\n", /* the first record's key lies in the next record */
        " 13 path=evil\n",  /* a space before the length */
        "+14 path=evil\n",  /* a sign */
        "3 =\n",            /* too short for a key, '=' and a newline */
        "99999999999999999999 path=x\n",
        "14 path=long", /* no newline */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lb_buf_reset(&s.listing);
        pax_archive(bad[i], strlen(bad[i]), &tar);
        assert_int_equal(read_all(&tar, 512, &s), LB_EPARSE);
        assert_int_equal(s.listing.len, 0);
    }
    lb_buf_free(&s.listing);
    lb_buf_free(&s.data);
    lb_buf_free(&tar);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gnu_tar_reads_what_we_write),
        cmocka_unit_test(test_reader_roundtrip_any_chunking),
        cmocka_unit_test(test_we_read_what_gnu_tar_writes),
        cmocka_unit_test(test_hostile_archives_refused),
        cmocka_unit_test(test_pax_records_are_bounded_by_their_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
