/*
 * fuzz_wal.c: libFuzzer target for the WAL decoder, which reads bytes a
 * compute or a peer sent (the safekeeper) or a safekeeper served (the
 * pageserver).
 *
 * The input's first bytes choose the set-up: the segment size, whether
 * decoding starts at a page start or at a record start (near a segment
 * boundary, so that long headers and segment crossings are reached), and
 * how the stream is cut into chunks. The rest is either fed as it is, or
 * read as a description of records that are written out as well-formed
 * WAL (page headers, continuation records, CRCs, block references, images,
 * main data, switch records), optionally with some bytes flipped after.
 *
 * Each chunk is its own allocation of its exact size, kept until the
 * decoder says it is consumed, so a read past a chunk is caught. Properties:
 *   - no crash, no out-of-bounds or undefined behaviour (every byte a
 *     record points at is read);
 *   - valid_end never passes what was fed, but for two paddings that are
 *     part of a record's end as PostgreSQL counts it (EndRecPtr): up to 7
 *     bytes of alignment, and after an XLOG_SWITCH record the rest of its
 *     segment;
 *   - well-formed WAL, not corrupted, decodes to exactly the records
 *     written, whatever the chunking.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "errors.h"
#include "wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STREAM (512u * 1024)
#define MAX_RECORDS 64
#define REC_CAP (32u * 1024) /* more than the largest record build_record() makes */
#define SYSID 7301234567890123456ULL

/* ---- reading the input ------------------------------------------------------------ */

typedef struct input {
    const uint8_t *p;
    size_t left;
} input;

static uint8_t
in8(input *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

static uint16_t
in16(input *in)
{
    uint16_t lo = in8(in);
    return (uint16_t)(lo | in8(in) << 8);
}

/* ---- writing well-formed WAL --------------------------------------------------------- */

typedef struct block {
    uint8_t fork, flags;
    uint16_t data_len, image_len, hole_offset, hole_length;
    uint8_t bimg_info;
    uint32_t spc, db, rel, blkno;
    const uint8_t *data, *image;
} block;

typedef struct record {
    uint8_t *bytes; /* the record as built; blocks and main point into it */
    lb_lsn lsn, end;
    uint8_t rmid, info;
    uint32_t xid, tot_len;
    int nblocks;
    block blocks[4];
    uint32_t main_len;
    const uint8_t *main;
    bool is_switch;
} record;

typedef struct writer {
    uint8_t *buf; /* the stream from start_lsn */
    size_t len, cap;
    lb_lsn start;
    uint32_t seg;
} writer;

static lb_lsn
w_pos(const writer *w)
{
    return w->start + w->len;
}

static bool
w_put(writer *w, const void *p, size_t n)
{
    if (w->len + n > w->cap)
        return false;
    if (p)
        memcpy(w->buf + w->len, p, n);
    else
        memset(w->buf + w->len, 0, n);
    w->len += n;
    return true;
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* A page header at the current position (a page start). */
static bool
w_page_header(writer *w, uint32_t rem_len)
{
    lb_lsn at = w_pos(w);
    bool is_long = at % w->seg == 0;
    uint8_t h[LB_WAL_LONG_PHD_SIZE] = {0};
    uint16_t info =
        (uint16_t)((rem_len ? LB_XLP_FIRST_IS_CONTRECORD : 0) | (is_long ? LB_XLP_LONG_HEADER : 0));
    put16(h, LB_WAL_PAGE_MAGIC);
    put16(h + 2, info);
    put32(h + 4, 1);
    put64(h + 8, at);
    put32(h + 16, rem_len);
    if (is_long) {
        put64(h + 24, SYSID);
        put32(h + 32, w->seg);
        put32(h + 36, LB_WAL_BLCKSZ);
    }
    /* A continuation's tail starts MAXALIGNed after the header, as
     * PostgreSQL lays it out. */
    return w_put(w, h, is_long ? LB_WAL_LONG_PHD_SIZE : LB_WAL_SHORT_PHD_SIZE);
}

/* Lay the record's bytes into pages from the current (aligned) position. */
static bool
w_record(writer *w, const uint8_t *rec, uint32_t tot_len)
{
    uint32_t done = 0;
    while (done < tot_len) {
        if (w_pos(w) % LB_WAL_BLCKSZ == 0 && !w_page_header(w, done ? tot_len - done : 0))
            return false;
        size_t room = LB_WAL_BLCKSZ - w_pos(w) % LB_WAL_BLCKSZ;
        size_t n = tot_len - done < room ? tot_len - done : room;
        if (!w_put(w, rec + done, n))
            return false;
        done += (uint32_t)n;
    }
    size_t pad = (size_t)(LB_WAL_MAXALIGN(w_pos(w)) - w_pos(w));
    return w_put(w, NULL, pad);
}

/* Build one record from the input into rec (which has room for it);
 * returns its length, or 0 when the input is used up. */
static uint32_t
build_record(input *in, record *r, uint8_t *rec, size_t cap, lb_lsn prev, bool allow_switch)
{
    if (in->left < 4)
        return 0;
    memset(r, 0, sizeof(*r));
    uint8_t shape = in8(in);
    r->rmid = in8(in);
    if (r->rmid > LB_RM_MAX_BUILTIN_ID && r->rmid < LB_RM_MIN_CUSTOM_ID)
        r->rmid %= LB_RM_MAX_BUILTIN_ID + 1;
    r->info = in8(in);
    r->is_switch = r->rmid == LB_RM_XLOG_ID && (r->info & 0xF0) == LB_XLOG_SWITCH;
    if (r->is_switch && !allow_switch)
        r->info &= 0x0F;
    r->is_switch = r->rmid == LB_RM_XLOG_ID && (r->info & 0xF0) == LB_XLOG_SWITCH;
    r->xid = in16(in);
    r->nblocks = shape & 3;

    uint8_t *p = rec + LB_WAL_RECORD_HEADER_SIZE;
    uint8_t *end = rec + cap;
    if (shape & 4) {
        *p++ = LB_XLR_BLOCK_ID_ORIGIN;
        put16(p, 0x1234);
        p += 2;
    }
    if (shape & 8) {
        *p++ = LB_XLR_BLOCK_ID_TOPLEVEL_XID;
        put32(p, 4242);
        p += 4;
    }
    size_t payload = 0;
    for (int i = 0; i < r->nblocks; i++) {
        block *b = &r->blocks[i];
        uint8_t kind = in8(in);
        b->fork = kind & 3;
        b->data_len = kind & 4 ? (uint16_t)(1 + in8(in)) : 0;
        b->blkno = in16(in);
        b->spc = 1663;
        b->db = 5;
        b->rel = 16384u + (kind >> 7);
        switch ((kind >> 3) & 3) {
        case 0: /* no image */
            break;
        case 1: /* a full page */
            b->image_len = LB_WAL_BLCKSZ;
            break;
        case 2: /* with a hole, not compressed */
            b->image_len = (uint16_t)(1 + in16(in) % (LB_WAL_BLCKSZ - 1));
            b->hole_length = (uint16_t)(LB_WAL_BLCKSZ - b->image_len);
            b->hole_offset = (uint16_t)(1 + in16(in) % (LB_WAL_BLCKSZ - b->hole_length));
            b->bimg_info = LB_BKPIMAGE_HAS_HOLE;
            break;
        case 3: /* compressed, maybe with a hole */
            b->image_len = (uint16_t)(1 + in16(in) % 2000);
            b->bimg_info = LB_BKPIMAGE_COMPRESS_LZ4;
            if (kind & 0x20) {
                b->bimg_info |= LB_BKPIMAGE_HAS_HOLE;
                b->hole_offset = (uint16_t)(1 + in16(in) % 4000);
                b->hole_length = (uint16_t)(1 + in16(in) % 4000);
            }
            break;
        }
        if ((kind & 0x40) && b->image_len)
            b->bimg_info |= LB_BKPIMAGE_APPLY;
        payload += b->data_len + b->image_len;
    }
    r->main_len = shape & 0x10 ? 256u + in16(in) % 1000 : in8(in) % 200;
    payload += r->main_len;
    if ((size_t)(end - p) < 40 * 4 + 8 + payload)
        return 0;

    const block *rel = NULL;
    for (int i = 0; i < r->nblocks; i++) {
        block *b = &r->blocks[i];
        bool same_rel = rel && rel->spc == b->spc && rel->db == b->db && rel->rel == b->rel;
        b->flags = (uint8_t)(b->fork | (b->data_len ? LB_BKPBLOCK_HAS_DATA : 0) |
                             (b->image_len ? LB_BKPBLOCK_HAS_IMAGE : 0) |
                             (same_rel ? LB_BKPBLOCK_SAME_REL : 0));
        *p++ = (uint8_t)(i * 3); /* ids increase, not necessarily by one */
        *p++ = b->flags;
        put16(p, b->data_len);
        p += 2;
        if (b->image_len) {
            put16(p, b->image_len);
            put16(p + 2, b->hole_offset);
            p[4] = b->bimg_info;
            p += 5;
            if (LB_BKPIMAGE_COMPRESSED(b->bimg_info) && (b->bimg_info & LB_BKPIMAGE_HAS_HOLE)) {
                put16(p, b->hole_length);
                p += 2;
            }
        }
        if (!same_rel) {
            put32(p, b->spc);
            put32(p + 4, b->db);
            put32(p + 8, b->rel);
            p += 12;
            rel = b;
        }
        put32(p, b->blkno);
        p += 4;
    }
    if (r->main_len > 255) {
        *p++ = LB_XLR_BLOCK_ID_DATA_LONG;
        put32(p, r->main_len);
        p += 4;
    } else if (r->main_len > 0) {
        *p++ = LB_XLR_BLOCK_ID_DATA_SHORT;
        *p++ = (uint8_t)r->main_len;
    }
    /* Payloads: images and data per block, then the main data; their
     * bytes come from the input (zeros once it runs out). */
    for (int i = 0; i < r->nblocks; i++) {
        block *b = &r->blocks[i];
        for (int part = 0; part < 2; part++) {
            uint16_t n = part == 0 ? b->image_len : b->data_len;
            if (!n)
                continue;
            if (part == 0)
                b->image = p;
            else
                b->data = p;
            for (uint16_t k = 0; k < n; k++)
                *p++ = in8(in);
        }
    }
    r->main = r->main_len ? p : NULL;
    for (uint32_t k = 0; k < r->main_len; k++)
        *p++ = in8(in);

    r->tot_len = (uint32_t)(p - rec);
    put32(rec, r->tot_len);
    put32(rec + 4, r->xid);
    put64(rec + 8, prev);
    rec[16] = r->info;
    rec[17] = r->rmid;
    rec[18] = rec[19] = 0;
    uint32_t crc = LB_CRC32C_INIT;
    crc = lb_crc32c_update(crc, rec + LB_WAL_RECORD_HEADER_SIZE,
                           r->tot_len - LB_WAL_RECORD_HEADER_SIZE);
    crc = lb_crc32c_update(crc, rec, 20);
    put32(rec + 20, LB_CRC32C_FINAL(crc));
    return r->tot_len;
}

/* ---- checking what the decoder returns ----------------------------------------------- */

static volatile uint32_t sink;

static void
touch(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    sink += s;
}

static void
check_record(const lb_wal_record *r, lb_lsn start, lb_lsn fed_end)
{
    if (r->lsn < start || r->end_lsn <= r->lsn || r->tot_len < LB_WAL_RECORD_HEADER_SIZE)
        abort();
    touch(r->raw, r->tot_len);
    if (r->nblocks < 0 || r->nblocks > LB_XLR_MAX_BLOCK_ID + 1)
        abort();
    for (int i = 0; i < r->nblocks; i++) {
        const lb_wal_block_ref *b = &r->blocks[i];
        if (b->has_data != (b->data != NULL) || b->has_image != (b->image != NULL))
            abort();
        if (b->data)
            touch(b->data, b->data_len);
        if (b->image)
            touch(b->image, b->image_len);
    }
    if ((r->main_data != NULL) != (r->main_data_len > 0))
        abort();
    if (r->main_data)
        touch(r->main_data, r->main_data_len);
    bool is_switch = r->rmid == LB_RM_XLOG_ID && (r->info & 0xF0) == LB_XLOG_SWITCH;
    if (r->end_lsn > LB_WAL_MAXALIGN(fed_end) && !is_switch)
        abort();
    lb_wal_xact_kind kind;
    int64_t t;
    lb_wal_xact_parse(r, &kind, &t);
    (void)lb_wal_rmgr_name(r->rmid);
}

static void
check_same(const lb_wal_record *got, const record *want)
{
    if (got->lsn != want->lsn || got->end_lsn != want->end || got->tot_len != want->tot_len ||
        got->rmid != want->rmid || got->info != want->info || got->xid != want->xid ||
        got->nblocks != want->nblocks || got->main_data_len != want->main_len)
        abort();
    if (want->main_len && memcmp(got->main_data, want->main, want->main_len) != 0)
        abort();
    for (int i = 0; i < want->nblocks; i++) {
        const lb_wal_block_ref *g = &got->blocks[i];
        const block *b = &want->blocks[i];
        if (g->block_id != i * 3 || g->fork != b->fork || g->data_len != b->data_len ||
            g->image_len != b->image_len || g->rel_node != b->rel || g->db_node != b->db ||
            g->spc_node != b->spc || g->blkno != b->blkno || g->hole_offset != b->hole_offset ||
            g->hole_length != b->hole_length || g->bimg_info != b->bimg_info)
            abort();
        if (b->data_len && memcmp(g->data, b->data, b->data_len) != 0)
            abort();
        if (b->image_len && memcmp(g->image, b->image, b->image_len) != 0)
            abort();
    }
}

/* ---- the target ------------------------------------------------------------------- */

static uint32_t
next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    input in = {data + 4, size - 4};
    uint8_t mode = data[0];
    bool structured = mode & 1, from_record = mode & 2, big_seg = mode & 4, corrupt = mode & 8;
    uint32_t seg = big_seg ? LB_WAL_SEG_SIZE_DEFAULT : LB_WAL_SEG_SIZE_MIN;
    /* Start a few pages before the start of segment 3. */
    lb_lsn page = 3 * (lb_lsn)seg - (lb_lsn)(data[1] % 8) * LB_WAL_BLCKSZ;
    lb_lsn start = page;
    if (from_record)
        start += page % seg == 0 ? LB_WAL_LONG_PHD_SIZE : LB_WAL_SHORT_PHD_SIZE;
    uint32_t rnd = 0x9E3779B9u ^ ((uint32_t)data[2] << 8 | data[3]);
    uint32_t max_chunk = (uint32_t[]){1, 7, 100, 8192, 70000}[(mode >> 4) % 5];

    /* The stream to feed. */
    /* The stream lives in one static buffer (each chunk fed is a copy);
     * a switch's padding is fed from zeros, never built. */
    static uint8_t stream[MAX_STREAM];
    static const uint8_t zeros[65536];
    writer w = {.buf = stream, .cap = sizeof(stream), .start = start, .seg = seg};
    size_t pad = 0;
    record *want = NULL;
    int nwant = 0;
    if (!structured) {
        w.len = in.left < w.cap ? in.left : w.cap;
        memcpy(w.buf, in.p, w.len);
    } else {
        want = calloc(MAX_RECORDS, sizeof(*want));
        lb_lsn prev = start - 8;
        if (!from_record && !w_page_header(&w, 0))
            abort();
        for (; nwant < MAX_RECORDS && w.len < MAX_STREAM; nwant++) {
            record *r = &want[nwant];
            uint8_t *rec = malloc(REC_CAP);
            uint32_t n = build_record(&in, r, rec, REC_CAP, prev, !big_seg);
            r->bytes = rec;
            if (!n)
                break;
            if (w_pos(&w) % LB_WAL_BLCKSZ == 0 && !w_page_header(&w, 0))
                break;
            r->lsn = w_pos(&w);
            /* rec was built for prev; its CRC covers xl_prev, so it stays */
            if (!w_record(&w, rec, n))
                break;
            r->end = w_pos(&w);
            if (r->is_switch) {
                lb_lsn seg_end = (w_pos(&w) + seg - 1) / seg * seg;
                r->end = seg_end;
                pad = (size_t)(seg_end - w_pos(&w));
                nwant++;
                break; /* keep the padding bounded: one switch ends the stream */
            }
            prev = r->lsn;
        }
        if (corrupt) {
            /* Flip bytes at positions the rest of the input chooses. */
            for (int k = 0; k < 4 && in.left >= 3 && w.len; k++) {
                size_t at = ((size_t)in8(&in) << 16 | (size_t)in16(&in)) % w.len;
                w.buf[at] ^= (uint8_t)(1u << (k * 3 % 8));
            }
        }
    }

    /* Tiny chunks over a long stream only cost time: past two pages they
     * find nothing that a few tiny chunks at its start do not. */
    if (max_chunk < 64 && w.len + pad > 2 * LB_WAL_BLCKSZ)
        max_chunk = 4096;

    lb_wal_decoder *dec;
    if (lb_wal_decoder_new(start, seg, &dec) != 0)
        abort();
    if (mode & 0x80)
        lb_wal_decoder_expect_sysid(dec, SYSID);

    size_t off = 0;
    int got = 0, rc = LB_ETRUNCATED;
    lb_lsn last_valid = start;
    bool last_switch = false;
    while (off < w.len + pad && rc == LB_ETRUNCATED) {
        size_t n = 1 + next_rand(&rnd) % max_chunk;
        uint8_t *chunk = NULL;
        if (off < w.len) {
            if (n > w.len - off)
                n = w.len - off;
            chunk = malloc(n);
            memcpy(chunk, w.buf + off, n);
        } else if (n > w.len + pad - off || n > sizeof(zeros)) {
            n = w.len + pad - off < sizeof(zeros) ? w.len + pad - off : sizeof(zeros);
        }
        if (lb_wal_decoder_feed(dec, chunk ? chunk : zeros, n) != 0)
            abort();
        off += n;
        lb_lsn fed_end = start + off;
        if (lb_wal_decoder_feed_lsn(dec) != fed_end)
            abort();
        lb_wal_record r;
        while ((rc = lb_wal_decoder_next(dec, &r)) == 0) {
            check_record(&r, start, fed_end);
            last_switch = r.rmid == LB_RM_XLOG_ID && (r.info & 0xF0) == LB_XLOG_SWITCH;
            if (structured && !corrupt) {
                if (got >= nwant)
                    abort();
                check_same(&r, &want[got]);
            }
            got++;
        }
        lb_lsn valid = lb_wal_decoder_valid_end(dec);
        if (valid < last_valid)
            abort();
        last_valid = valid;
        if (valid > LB_WAL_MAXALIGN(fed_end) &&
            !(last_switch && valid % seg == 0 && valid - seg < fed_end))
            abort();
        if (rc != LB_ETRUNCATED) {
            /* An error is sticky and explains itself. */
            lb_wal_record again;
            if (lb_wal_decoder_next(dec, &again) != rc || !lb_wal_decoder_errmsg(dec)[0])
                abort();
            (void)lb_wal_decoder_error_lsn(dec);
        }
        free(chunk); /* consumed: the decoder said LB_ETRUNCATED, or failed */
    }
    if (structured && !corrupt) {
        /* Well-formed WAL: every record, nothing else, and no error. */
        if (rc != LB_ETRUNCATED || got != nwant)
            abort();
        if (nwant && lb_wal_decoder_valid_end(dec) != want[nwant - 1].end)
            abort();
    }
    (void)lb_wal_decoder_sysid(dec);
    (void)lb_wal_decoder_tli(dec);
    lb_wal_decoder_free(dec);

    /* The helpers that read names and headers from the network. */
    lb_wal_page_header h;
    lb_wal_page_header_parse(data, size, &h);
    char name[32];
    size_t k = size - 4 < sizeof(name) - 1 ? size - 4 : sizeof(name) - 1;
    memcpy(name, data + 4, k);
    name[k] = '\0';
    uint32_t tli;
    uint64_t segno;
    if (lb_wal_segment_parse(name, seg, &tli, &segno) == 0) {
        char back[LB_WAL_SEG_NAME_LEN + 1];
        if (lb_wal_segment_name(back, tli, segno, seg) != 0 || strcmp(back, name) != 0)
            abort();
    }
    for (int i = 0; want && i < MAX_RECORDS && want[i].bytes; i++)
        free(want[i].bytes);
    free(want);
    return 0;
}
