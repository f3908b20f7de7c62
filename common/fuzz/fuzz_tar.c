/*
 * fuzz_tar.c: libFuzzer target for the tar reader (basebackups that
 * compute-ctl unpacks, archives the pageserver reads): any bytes, fed in
 * pieces whose sizes come from the input. The property: no crash, no
 * out-of-bounds access, every name handed to the caller is safe, and data
 * never exceeds the entry's announced size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct state {
    uint64_t size, seen;
} state;

static int
on_entry(void *arg, const lb_tar_entry *e)
{
    state *s = arg;
    if (!lb_tar_name_is_safe(e->name))
        abort();
    s->size = e->size;
    s->seen = 0;
    return 0;
}

static int
on_data(void *arg, const lb_tar_entry *e, const void *bytes, size_t n)
{
    (void)e;
    (void)bytes;
    state *s = arg;
    s->seen += n;
    if (s->seen > s->size)
        abort();
    return 0;
}

static int
on_end(void *arg, const lb_tar_entry *e)
{
    (void)e;
    state *s = arg;
    if (s->seen != s->size)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const lb_tar_reader_ops ops = {on_entry, on_data, on_end};
    if (size < 1)
        return 0;
    size_t piece = 1 + data[0] * 7u; /* chunking from the first byte */
    data++;
    size--;
    state s = {0, 0};
    lb_tar_reader *r;
    if (lb_tar_reader_new(&ops, &s, &r) != 0)
        return 0;
    for (size_t off = 0; off < size;) {
        size_t n = size - off < piece ? size - off : piece;
        if (lb_tar_reader_feed(r, data + off, n) != 0)
            break;
        off += n;
    }
    lb_tar_reader_free(r);
    return 0;
}
