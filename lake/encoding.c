/*
 * encoding.c: the RLE / bit-packing hybrid, and byte-level helpers.
 *
 * The hybrid is a sequence of runs, each starting with a ULEB128 header:
 *
 *   - RLE run: header = count << 1; then the repeated value in
 *     ceil(bit_width / 8) little-endian bytes.
 *   - bit-packed run: header = groups << 1 | 1; then groups * 8 values,
 *     each bit_width bits, packed least significant bit first. The last
 *     group may be padded with zeros past the real values; readers know
 *     the value count from the page header.
 *
 * We choose an RLE run whenever at least 8 equal values follow, else we
 * bit-pack groups of 8 until such a run starts (at a group boundary). A
 * bit-packed run holds at most 63 groups, so its header is one byte, as
 * most writers do.
 *
 * Callers: parquet.c for levels and dictionary indices.
 */
#include "encoding.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "thrift.h"
#include "value.h"

#define MAX_GROUPS_PER_RUN 63

int
lake__bit_width(uint32_t max_value)
{
    int w = 0;
    while (max_value) {
        w++;
        max_value >>= 1;
    }
    return w;
}

/* Length of the run of equal values starting at i, counting at most cap. */
static size_t
run_length(const uint32_t *v, size_t n, size_t i, size_t cap)
{
    size_t j = i + 1;
    while (j < n && j - i < cap && v[j] == v[i])
        j++;
    return j - i;
}

static int
put_rle_run(lb_buf *out, uint32_t value, size_t count, int bit_width)
{
    int rc = lake__put_uvarint(out, (uint64_t)count << 1);
    if (rc)
        return rc;
    uint8_t bytes[4];
    int nbytes = (bit_width + 7) / 8;
    for (int i = 0; i < nbytes; i++)
        bytes[i] = (uint8_t)(value >> (8 * i));
    return lb_buf_append(out, bytes, (size_t)nbytes);
}

/* Pack values[i..i+groups*8) (zero past n) as one bit-packed run. */
static int
put_packed_run(lb_buf *out, const uint32_t *v, size_t n, size_t i, size_t groups, int bit_width)
{
    assert(groups >= 1 && groups <= MAX_GROUPS_PER_RUN);
    int rc = lake__put_uvarint(out, (uint64_t)groups << 1 | 1);
    if (rc)
        return rc;
    rc = lb_buf_reserve(out, groups * (size_t)bit_width);
    if (rc)
        return rc;
    uint8_t *p = (uint8_t *)out->data + out->len;
    uint64_t acc = 0;
    int nbits = 0;
    for (size_t k = 0; k < groups * 8; k++) {
        uint64_t x = i + k < n ? v[i + k] : 0;
        assert(bit_width == 32 || x < ((uint64_t)1 << bit_width));
        acc |= x << nbits;
        nbits += bit_width;
        while (nbits >= 8) {
            *p++ = (uint8_t)acc;
            acc >>= 8;
            nbits -= 8;
        }
    }
    /* 8 values of bit_width bits are exactly bit_width bytes. */
    assert(nbits == 0);
    out->len += groups * (size_t)bit_width;
    out->data[out->len] = '\0';
    return 0;
}

int
lake__rle_encode(const uint32_t *values, size_t n, int bit_width, lb_buf *out)
{
    assert(bit_width >= 1 && bit_width <= 32);
    size_t i = 0;
    while (i < n) {
        size_t run = run_length(values, n, i, SIZE_MAX);
        if (run >= 8) {
            int rc = put_rle_run(out, values[i], run, bit_width);
            if (rc)
                return rc;
            i += run;
            continue;
        }
        /* Bit-pack whole groups until a run of 8 starts at a group edge. */
        size_t groups = 0;
        size_t j = i;
        do {
            groups++;
            j += 8;
        } while (j < n && groups < MAX_GROUPS_PER_RUN && run_length(values, n, j, 8) < 8);
        int rc = put_packed_run(out, values, n, i, groups, bit_width);
        if (rc)
            return rc;
        i = j < n ? j : n;
    }
    return 0;
}

/* Whether s[0..n) is all ASCII: the bytes OR-ed together 8 at a time, the
 * last 8 overlapping, with no branch per word. */
static bool
all_ascii(const uint8_t *s, size_t n)
{
    uint64_t acc = 0, x;
    size_t i = 0;
    for (; n - i >= 32; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, s + i, 8);
        memcpy(&b, s + i + 8, 8);
        memcpy(&c, s + i + 16, 8);
        memcpy(&d, s + i + 24, 8);
        acc |= a | b | c | d;
    }
    for (; n - i >= 8; i += 8) {
        memcpy(&x, s + i, 8);
        acc |= x;
    }
    if (i < n) {
        x = 0;
        if (n >= 8)
            memcpy(&x, s + n - 8, 8);
        else
            memcpy(&x, s, n);
        acc |= x;
    }
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

bool
lake__utf8_valid(const uint8_t *s, size_t n, size_t *bad_at)
{
    if (all_ascii(s, n))
        return true;
    size_t i = 0;
    while (i < n) {
        /* ASCII 32 and then 8 bytes at a time. */
        while (n - i >= 32) {
            uint64_t a, b, c, d;
            memcpy(&a, s + i, 8);
            memcpy(&b, s + i + 8, 8);
            memcpy(&c, s + i + 16, 8);
            memcpy(&d, s + i + 24, 8);
            if (((a | b | c | d) & UINT64_C(0x8080808080808080)) != 0)
                break;
            i += 32;
        }
        if (i == n)
            break;
        if (n >= 8) {
            /* The last few bytes: the 8 that end the string, overlapping
             * bytes already checked. */
            size_t at = n - i >= 8 ? i : n - 8;
            uint64_t word;
            memcpy(&word, s + at, 8);
            if ((word & UINT64_C(0x8080808080808080)) == 0) {
                i = at + 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (n - i < len)
            goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += len;
    }
    return true;
bad:
    if (bad_at)
        *bad_at = i;
    return false;
}

size_t
lake__utf8_prefix(const uint8_t *s, size_t n, size_t limit)
{
    if (n <= limit)
        return n;
    size_t end = limit;
    /* Back off continuation bytes so that the cut is before a lead byte. */
    while (end > 0 && (s[end] & 0xc0) == 0x80)
        end--;
    return end;
}

bool
lake_utf8_valid(const void *bytes, size_t n)
{
    return lake__utf8_valid(bytes, n, NULL);
}
