/*
 * wal.c: a streaming decoder of PostgreSQL 15's generic WAL format.
 *
 * WAL is a byte stream addressed by LSN, cut into 8 KiB pages and into
 * segments of seg_size bytes. Every page starts with a header (a long one at
 * a segment start, with the system id and sizes for cross-checking); records
 * start MAXALIGNed and may run across any number of pages and segments, each
 * continuation page saying in xlp_rem_len how much of the record is left.
 * After an XLOG_SWITCH record the rest of its segment is padding.
 *
 * The decoder is a state machine over that stream. Callers (the safekeeper
 * reading its segments or a replication socket, the pageserver indexing
 * blocks) hand it chunks of any size with lb_wal_decoder_feed(); it borrows
 * them without copying, assembles the record being read in one buffer, and
 * returns each record from lb_wal_decoder_next(). So it holds at most one
 * record plus a page header, whatever the chunk sizes, and a record never
 * costs more memory than the bytes actually fed for it: tot_len, which is
 * only trusted once the CRC matches, never sizes an allocation up front.
 *
 * Invariants:
 *   - pos is the LSN of the next byte to be fed; it only grows.
 *   - In ST_REC_START pos is MAXALIGNed and past the page header.
 *   - In ST_REC, rec[0..rec_got) holds the record's bytes read so far
 *     (page headers removed) and rec_got < tot_len once the header is known.
 *   - Page headers are read whenever pos is at a page start, except while
 *     skipping padding (ST_SKIP), which includes the padding after
 *     XLOG_SWITCH that PostgreSQL itself never reads.
 *   - Errors are sticky: after one, next() keeps returning it.
 *
 * What counts as the end of WAL rather than corruption: an all-zero record
 * header or page header (space never written), and a page whose pageaddr is
 * an older address at the same offset of a segment (a recycled segment file,
 * what PostgreSQL leaves past its insert position). Everything else that
 * does not check out (magic, flags, addresses, lengths, CRC, block headers)
 * is reported as an error, with the LSN of the record or page.
 *
 * The checks follow PostgreSQL's own reader (xlogreader.c) so that this
 * decoder stops exactly where PostgreSQL and pg_waldump stop; a few are
 * stricter (fork numbers, image holes inside the page) because the
 * pageserver trusts these fields.
 */
#include "wal.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "errors.h"

/* Records bigger than this give their buffer back once returned. */
#define REC_BUF_KEEP (1024u * 1024)
#define REC_BUF_MIN 8192u

typedef enum dec_state {
    ST_REC_START, /* a record starts at pos */
    ST_REC,       /* reading a record's bytes into rec */
    ST_SKIP,      /* skipping to skip_to: alignment, or a switch's padding */
    ST_SKIP_CONT, /* skipping the tail of a record that began before the start */
    ST_FAILED,    /* sticky error in err */
} dec_state;

struct lb_wal_decoder {
    uint32_t seg_size;
    lb_lsn start_lsn;
    lb_lsn pos;
    dec_state state;

    /* Borrowed input: the bytes at pos. */
    const uint8_t *in;
    size_t in_len;

    /* Page header being read; it starts at pos - phdr_got. */
    uint8_t phdr[LB_WAL_LONG_PHD_SIZE];
    uint32_t phdr_got;
    /* Only the first page header may start with a continuation to skip. */
    bool may_skip_cont;

    /* The record being read. */
    lb_lsn rec_lsn;
    uint8_t *rec;
    size_t rec_cap;
    uint32_t rec_got;
    uint32_t rec_tot_len; /* valid once rec_got >= 4 */
    bool rec_hdr_checked; /* full 24-byte header validated */
    bool record_out;      /* a record was returned and points into rec */

    lb_lsn skip_to;     /* ST_SKIP */
    uint32_t cont_left; /* ST_SKIP_CONT */

    bool prev_known;
    lb_lsn prev_lsn; /* start of the last record read */
    bool sysid_known;
    uint64_t sysid;
    uint32_t tli;
    lb_lsn valid_end;

    int err;
    lb_lsn err_lsn;
    char errmsg[192];

    lb_wal_block_ref blocks[LB_XLR_MAX_BLOCK_ID + 1];
};

/* ---- little-endian field access (WAL is written in host order; PostgreSQL
 * on every platform lakebase runs on is little-endian) ------------------- */

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static bool
all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- segments ----------------------------------------------------------- */

bool
lb_wal_seg_size_valid(uint64_t seg_size)
{
    return seg_size >= LB_WAL_SEG_SIZE_MIN && seg_size <= LB_WAL_SEG_SIZE_MAX &&
           (seg_size & (seg_size - 1)) == 0;
}

int
lb_wal_segment_name(char *name, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
    assert(name);
    if (!lb_wal_seg_size_valid(seg_size))
        return -EINVAL;
    uint64_t per_id = UINT64_C(0x100000000) / seg_size;
    if (segno / per_id > UINT32_MAX)
        return -EINVAL;
    snprintf(name, LB_WAL_SEG_NAME_LEN + 1, "%08X%08X%08X", tli, (uint32_t)(segno / per_id),
             (uint32_t)(segno % per_id));
    return 0;
}

static int
parse_hex8(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return LB_EPARSE;
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}

int
lb_wal_segment_parse(const char *name, uint32_t seg_size, uint32_t *tli, uint64_t *segno)
{
    uint32_t t, log, seg;
    if (!name || !lb_wal_seg_size_valid(seg_size) || strlen(name) != LB_WAL_SEG_NAME_LEN)
        return LB_EPARSE;
    if (parse_hex8(name, &t) || parse_hex8(name + 8, &log) || parse_hex8(name + 16, &seg))
        return LB_EPARSE;
    uint64_t per_id = UINT64_C(0x100000000) / seg_size;
    if (t == 0 || seg >= per_id)
        return LB_EPARSE;
    if (tli)
        *tli = t;
    if (segno)
        *segno = (uint64_t)log * per_id + seg;
    return 0;
}

int
lb_wal_history_parse(const char *name, uint32_t *tli)
{
    uint32_t t;
    if (!name || strlen(name) != 16 || strcmp(name + 8, ".history") != 0 || parse_hex8(name, &t) ||
        t == 0)
        return LB_EPARSE;
    if (tli)
        *tli = t;
    return 0;
}

lb_wal_file_kind
lb_wal_file_parse(const char *name, uint32_t seg_size, uint32_t *tli, uint64_t *segno)
{
    if (lb_wal_segment_parse(name, seg_size, tli, segno) == 0)
        return LB_WAL_FILE_SEGMENT;
    if (lb_wal_history_parse(name, tli) == 0)
        return LB_WAL_FILE_HISTORY;
    return LB_WAL_FILE_BAD;
}

/* ---- how much of a served segment is WAL -------------------------------- */

int
lb_wal_valid_parse(const char *bytes, const char *final, uint32_t seg_size, lb_wal_valid *out)
{
    *out = (lb_wal_valid){.bytes = seg_size, .final = true};
    if (!bytes)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(bytes, &end, 10);
    if (bytes[0] < '0' || bytes[0] > '9' || *end || errno || n > seg_size)
        return LB_EPROTO;
    out->bytes = n;
    out->final = n == seg_size || (final && strcmp(final, "true") == 0);
    return 0;
}

void
lb_wal_valid_format(const lb_wal_valid *v, uint32_t seg_size, char bytes[21], const char **final)
{
    snprintf(bytes, 21, "%" PRIu64, v->bytes);
    *final = v->final && v->bytes < seg_size ? "true" : NULL;
}

bool
lb_wal_valid_better(const lb_wal_valid *a, const lb_wal_valid *b)
{
    return a->bytes > b->bytes || (a->bytes == b->bytes && a->final && !b->final);
}

bool
lb_wal_valid_complete(const lb_wal_valid *v, uint32_t seg_size)
{
    return v->final || v->bytes >= seg_size;
}

bool
lb_wal_valid_covers(const lb_wal_valid *v, uint64_t segno, uint32_t seg_size, lb_lsn need)
{
    lb_lsn start = lb_wal_segment_start(segno, seg_size);
    if (v->final || need <= start)
        return true;
    uint64_t want = need - start < seg_size ? need - start : seg_size;
    return v->bytes >= want;
}

/* ---- page headers ------------------------------------------------------- */

/* Check the short header in p[0..LB_WAL_SHORT_PHD_SIZE): zeroed, magic,
 * info bits. The message (if msg) names the page by page_lsn, the position
 * the caller expected it at. */
static int
check_short_header(const uint8_t *p, lb_lsn page_lsn, lb_wal_page_header *h, char *msg,
                   size_t msglen)
{
    if (all_zero(p, LB_WAL_SHORT_PHD_SIZE)) {
        snprintf(msg, msglen, "end of WAL at " LB_LSN_FMT ": zeroed page", LB_LSN_ARGS(page_lsn));
        return LB_WAL_END;
    }
    memset(h, 0, sizeof(*h));
    h->magic = get16(p);
    h->info = get16(p + 2);
    h->tli = get32(p + 4);
    h->pageaddr = get64(p + 8);
    h->rem_len = get32(p + 16);
    h->size = LB_WAL_SHORT_PHD_SIZE;
    if (h->magic != LB_WAL_PAGE_MAGIC) {
        snprintf(msg, msglen, "invalid magic number %04X in WAL page at " LB_LSN_FMT, h->magic,
                 LB_LSN_ARGS(page_lsn));
        return LB_EPARSE;
    }
    if (h->info & ~LB_XLP_ALL_FLAGS) {
        snprintf(msg, msglen, "invalid info bits %04X in WAL page at " LB_LSN_FMT, h->info,
                 LB_LSN_ARGS(page_lsn));
        return LB_EPARSE;
    }
    return 0;
}

/* The rest of a long header, p[0..LB_WAL_LONG_PHD_SIZE), after the short
 * part passed check_short_header(). */
static int
check_long_header(const uint8_t *p, lb_lsn page_lsn, lb_wal_page_header *h, char *msg,
                  size_t msglen)
{
    assert(h->info & LB_XLP_LONG_HEADER);
    h->is_long = true;
    h->size = LB_WAL_LONG_PHD_SIZE;
    h->sysid = get64(p + 24);
    h->seg_size = get32(p + 32);
    h->blcksz = get32(p + 36);
    if (!lb_wal_seg_size_valid(h->seg_size)) {
        snprintf(msg, msglen, "invalid WAL segment size %u in page header at " LB_LSN_FMT,
                 h->seg_size, LB_LSN_ARGS(page_lsn));
        return LB_EPARSE;
    }
    if (h->blcksz != LB_WAL_BLCKSZ) {
        snprintf(msg, msglen, "WAL block size %u in page header at " LB_LSN_FMT " is not %u",
                 h->blcksz, LB_LSN_ARGS(page_lsn), LB_WAL_BLCKSZ);
        return LB_EPARSE;
    }
    return 0;
}

int
lb_wal_page_header_parse(const void *page, size_t len, lb_wal_page_header *hdr)
{
    if (!page || !hdr)
        return -EINVAL;
    if (len < LB_WAL_SHORT_PHD_SIZE)
        return LB_ETRUNCATED;
    lb_wal_page_header h;
    char msg[8];
    int rc = check_short_header(page, 0, &h, msg, sizeof(msg));
    if (rc == 0 && (h.info & LB_XLP_LONG_HEADER)) {
        if (len < LB_WAL_LONG_PHD_SIZE)
            return LB_ETRUNCATED;
        rc = check_long_header(page, 0, &h, msg, sizeof(msg));
    }
    if (rc == 0)
        *hdr = h;
    return rc;
}

/* ---- decoder: setup ----------------------------------------------------- */

int
lb_wal_decoder_new(lb_lsn start_lsn, uint32_t seg_size, lb_wal_decoder **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!lb_wal_seg_size_valid(seg_size))
        return -EINVAL;
    uint32_t page_off = (uint32_t)(start_lsn % LB_WAL_BLCKSZ);
    if (page_off != 0) {
        /* A record start: aligned and past the page header. */
        uint32_t hdr =
            start_lsn % seg_size < LB_WAL_BLCKSZ ? LB_WAL_LONG_PHD_SIZE : LB_WAL_SHORT_PHD_SIZE;
        if (start_lsn % 8 != 0 || page_off < hdr)
            return -EINVAL;
    }
    lb_wal_decoder *dec = calloc(1, sizeof(*dec));
    if (!dec)
        return -ENOMEM;
    dec->seg_size = seg_size;
    dec->start_lsn = start_lsn;
    dec->pos = start_lsn;
    dec->valid_end = start_lsn;
    dec->state = ST_REC_START;
    dec->may_skip_cont = page_off == 0;
    *out = dec;
    return 0;
}

void
lb_wal_decoder_free(lb_wal_decoder *dec)
{
    if (!dec)
        return;
    free(dec->rec);
    free(dec);
}

void
lb_wal_decoder_expect_prev(lb_wal_decoder *dec, lb_lsn prev_lsn)
{
    assert(dec);
    dec->prev_known = true;
    dec->prev_lsn = prev_lsn;
}

void
lb_wal_decoder_expect_sysid(lb_wal_decoder *dec, uint64_t sysid)
{
    assert(dec);
    dec->sysid_known = true;
    dec->sysid = sysid;
}

int
lb_wal_decoder_feed(lb_wal_decoder *dec, const void *bytes, size_t n)
{
    assert(dec);
    if (dec->in_len > 0)
        return -EBUSY;
    if (!bytes && n > 0)
        return -EINVAL;
    dec->in = bytes;
    dec->in_len = n;
    return 0;
}

lb_lsn
lb_wal_decoder_feed_lsn(const lb_wal_decoder *dec)
{
    return dec->pos + dec->in_len;
}

lb_lsn
lb_wal_decoder_valid_end(const lb_wal_decoder *dec)
{
    return dec->valid_end;
}

lb_lsn
lb_wal_decoder_error_lsn(const lb_wal_decoder *dec)
{
    return dec->err_lsn;
}

const char *
lb_wal_decoder_errmsg(const lb_wal_decoder *dec)
{
    return dec->errmsg;
}

uint64_t
lb_wal_decoder_sysid(const lb_wal_decoder *dec)
{
    return dec->sysid_known ? dec->sysid : 0;
}

uint32_t
lb_wal_decoder_tli(const lb_wal_decoder *dec)
{
    return dec->tli;
}

/* ---- decoder: the state machine ----------------------------------------- */

static int fail(lb_wal_decoder *dec, int err, lb_lsn at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record a sticky error (or the end of WAL) found at LSN at. */
static int
fail(lb_wal_decoder *dec, int err, lb_lsn at, const char *fmt, ...)
{
    assert(err < 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dec->errmsg, sizeof(dec->errmsg), fmt, ap);
    va_end(ap);
    dec->err = err;
    dec->err_lsn = at;
    dec->state = ST_FAILED;
    return err;
}

static void
consume(lb_wal_decoder *dec, size_t n)
{
    assert(n <= dec->in_len);
    dec->in += n;
    dec->in_len -= n;
    dec->pos += n;
}

/* Apply a complete page header to the current state. */
static int
page_header_apply(lb_wal_decoder *dec, lb_lsn page_lsn, const lb_wal_page_header *h)
{
    assert(h->is_long == (page_lsn % dec->seg_size == 0));
    if (h->pageaddr != page_lsn) {
        /* A recycled segment keeps its old pages past the insert position. */
        if (h->pageaddr < page_lsn && h->pageaddr % dec->seg_size == page_lsn % dec->seg_size)
            return fail(dec, LB_WAL_END, page_lsn,
                        "end of WAL at " LB_LSN_FMT
                        ": page from a recycled segment (pageaddr " LB_LSN_FMT ")",
                        LB_LSN_ARGS(page_lsn), LB_LSN_ARGS(h->pageaddr));
        return fail(dec, LB_EPARSE, page_lsn,
                    "unexpected pageaddr " LB_LSN_FMT " in WAL page at " LB_LSN_FMT,
                    LB_LSN_ARGS(h->pageaddr), LB_LSN_ARGS(page_lsn));
    }
    if (h->is_long) {
        if (h->seg_size != dec->seg_size)
            return fail(dec, LB_EPARSE, page_lsn,
                        "WAL segment size %u in page header at " LB_LSN_FMT " does not match %u",
                        h->seg_size, LB_LSN_ARGS(page_lsn), dec->seg_size);
        if (dec->sysid_known && h->sysid != dec->sysid)
            return fail(dec, LB_EPARSE, page_lsn,
                        "WAL page at " LB_LSN_FMT " is from a different database system: "
                        "system id %" PRIu64 ", expected %" PRIu64,
                        LB_LSN_ARGS(page_lsn), h->sysid, dec->sysid);
        dec->sysid_known = true;
        dec->sysid = h->sysid;
    }
    if (h->tli == 0)
        return fail(dec, LB_EPARSE, page_lsn, "invalid timeline ID 0 in WAL page at " LB_LSN_FMT,
                    LB_LSN_ARGS(page_lsn));
    if (h->tli < dec->tli)
        return fail(dec, LB_EPARSE, page_lsn,
                    "out-of-sequence timeline ID %u (after %u) in WAL page at " LB_LSN_FMT, h->tli,
                    dec->tli, LB_LSN_ARGS(page_lsn));
    dec->tli = h->tli;

    bool first = dec->may_skip_cont;
    dec->may_skip_cont = false;
    switch (dec->state) {
    case ST_REC_START:
        if (h->info & LB_XLP_FIRST_IS_CONTRECORD) {
            if (!first)
                return fail(dec, LB_EPARSE, page_lsn,
                            "unexpected continuation record in WAL page at " LB_LSN_FMT,
                            LB_LSN_ARGS(page_lsn));
            /* Decoding starts in the middle of a record: skip its tail. */
            dec->cont_left = h->rem_len;
            dec->state = h->rem_len > 0 ? ST_SKIP_CONT : ST_REC_START;
        }
        return 0;
    case ST_REC:
        assert(dec->rec_got >= 4 && dec->rec_got < dec->rec_tot_len);
        if (h->info & LB_XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
            /* The rest of this record was never written: a new primary
             * overwrote it, starting a fresh record on this page. The
             * partial record is dropped, as PostgreSQL does. */
            dec->state = ST_REC_START;
            return 0;
        }
        if (!(h->info & LB_XLP_FIRST_IS_CONTRECORD))
            return fail(dec, LB_EPARSE, page_lsn,
                        "there is no contrecord flag in WAL page at " LB_LSN_FMT
                        " for record at " LB_LSN_FMT,
                        LB_LSN_ARGS(page_lsn), LB_LSN_ARGS(dec->rec_lsn));
        if (h->rem_len == 0 || h->rem_len != dec->rec_tot_len - dec->rec_got)
            return fail(dec, LB_EPARSE, page_lsn,
                        "invalid contrecord length %u (expected %u) in WAL page at " LB_LSN_FMT,
                        h->rem_len, dec->rec_tot_len - dec->rec_got, LB_LSN_ARGS(page_lsn));
        return 0;
    case ST_SKIP_CONT:
        if (h->info & LB_XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
            dec->state = ST_REC_START;
            return 0;
        }
        if (!(h->info & LB_XLP_FIRST_IS_CONTRECORD) || h->rem_len != dec->cont_left)
            return fail(dec, LB_EPARSE, page_lsn,
                        "invalid contrecord length %u (expected %u) in WAL page at " LB_LSN_FMT,
                        h->rem_len, dec->cont_left, LB_LSN_ARGS(page_lsn));
        return 0;
    case ST_SKIP:
    case ST_FAILED:
        break;
    }
    assert(!"page header in a state that reads none");
    return fail(dec, LB_EPARSE, page_lsn, "internal state error at " LB_LSN_FMT,
                LB_LSN_ARGS(page_lsn));
}

/* Gather page header bytes up to want; true once there. */
static bool
fill_page_header(lb_wal_decoder *dec, uint32_t want)
{
    assert(want <= sizeof(dec->phdr));
    if (dec->phdr_got < want) {
        size_t n = want - dec->phdr_got;
        if (n > dec->in_len)
            n = dec->in_len;
        if (n == 0)
            return false;
        memcpy(dec->phdr + dec->phdr_got, dec->in, n);
        dec->phdr_got += (uint32_t)n;
        consume(dec, n);
    }
    return dec->phdr_got >= want;
}

/* Read the page header at pos. 1 when complete, 0 when more input is
 * needed, or an error. */
static int
read_page_header(lb_wal_decoder *dec)
{
    lb_lsn page_lsn = dec->pos - dec->phdr_got;
    assert(page_lsn % LB_WAL_BLCKSZ == 0);
    if (!fill_page_header(dec, LB_WAL_SHORT_PHD_SIZE))
        return 0;

    lb_wal_page_header h;
    char msg[sizeof(dec->errmsg)];
    int rc = check_short_header(dec->phdr, page_lsn, &h, msg, sizeof(msg));
    if (rc == LB_WAL_END && dec->state == ST_REC)
        return fail(dec, LB_WAL_END, dec->rec_lsn,
                    "end of WAL at " LB_LSN_FMT ": record continues into zeroed page " LB_LSN_FMT,
                    LB_LSN_ARGS(dec->rec_lsn), LB_LSN_ARGS(page_lsn));
    if (rc < 0)
        return fail(dec, rc, page_lsn, "%s", msg);

    bool seg_start = page_lsn % dec->seg_size == 0;
    bool is_long = (h.info & LB_XLP_LONG_HEADER) != 0;
    if (seg_start && !is_long)
        return fail(dec, LB_EPARSE, page_lsn, "missing long header in WAL segment at " LB_LSN_FMT,
                    LB_LSN_ARGS(page_lsn));
    if (!seg_start && is_long)
        return fail(dec, LB_EPARSE, page_lsn, "unexpected long header in WAL page at " LB_LSN_FMT,
                    LB_LSN_ARGS(page_lsn));
    if (is_long) {
        if (!fill_page_header(dec, LB_WAL_LONG_PHD_SIZE))
            return 0;
        rc = check_long_header(dec->phdr, page_lsn, &h, msg, sizeof(msg));
        if (rc < 0)
            return fail(dec, rc, page_lsn, "%s", msg);
    }
    assert(dec->phdr_got == h.size);
    dec->phdr_got = 0;
    rc = page_header_apply(dec, page_lsn, &h);
    return rc < 0 ? rc : 1;
}

static bool
rmid_valid(uint8_t rmid)
{
    return rmid <= LB_RM_MAX_BUILTIN_ID || rmid >= LB_RM_MIN_CUSTOM_ID;
}

/* Check a record header. Called with the first rec_got bytes, all the
 * record has on its first page when that is less than a full header, and
 * again once the full header is there. */
static int
check_record_header(lb_wal_decoder *dec)
{
    uint32_t have =
        dec->rec_got < LB_WAL_RECORD_HEADER_SIZE ? dec->rec_got : LB_WAL_RECORD_HEADER_SIZE;
    assert(have >= 4);
    uint32_t tot_len = get32(dec->rec);
    if (tot_len == 0 && all_zero(dec->rec, have))
        return fail(dec, LB_WAL_END, dec->rec_lsn,
                    "end of WAL at " LB_LSN_FMT ": zeroed record header",
                    LB_LSN_ARGS(dec->rec_lsn));
    if (tot_len < LB_WAL_RECORD_HEADER_SIZE)
        return fail(dec, LB_EPARSE, dec->rec_lsn,
                    "invalid record length at " LB_LSN_FMT ": wanted %u, got %u",
                    LB_LSN_ARGS(dec->rec_lsn), LB_WAL_RECORD_HEADER_SIZE, tot_len);
    if (tot_len > LB_WAL_MAX_RECORD)
        return fail(dec, LB_ETOOBIG, dec->rec_lsn, "record length %u at " LB_LSN_FMT " too long",
                    tot_len, LB_LSN_ARGS(dec->rec_lsn));
    if (have < LB_WAL_RECORD_HEADER_SIZE)
        return 0;
    uint8_t rmid = dec->rec[17];
    if (!rmid_valid(rmid))
        return fail(dec, LB_EPARSE, dec->rec_lsn, "invalid resource manager ID %u at " LB_LSN_FMT,
                    rmid, LB_LSN_ARGS(dec->rec_lsn));
    lb_lsn prev = get64(dec->rec + 8);
    if (dec->prev_known ? prev != dec->prev_lsn : prev >= dec->rec_lsn)
        return fail(dec, LB_EPARSE, dec->rec_lsn,
                    "record with incorrect prev-link " LB_LSN_FMT " at " LB_LSN_FMT,
                    LB_LSN_ARGS(prev), LB_LSN_ARGS(dec->rec_lsn));
    dec->rec_hdr_checked = true;
    return 0;
}

/* Make room for n more record bytes, growing with what arrives. */
static int
rec_reserve(lb_wal_decoder *dec, size_t n)
{
    size_t need = (size_t)dec->rec_got + n;
    if (need <= dec->rec_cap)
        return 0;
    size_t cap = dec->rec_cap ? dec->rec_cap : REC_BUF_MIN;
    while (cap < need)
        cap *= 2;
    if (dec->rec_got >= 4 && cap > dec->rec_tot_len)
        cap = dec->rec_tot_len > need ? dec->rec_tot_len : need;
    uint8_t *p = realloc(dec->rec, cap);
    if (!p)
        return -ENOMEM;
    dec->rec = p;
    dec->rec_cap = cap;
    return 0;
}

/* Split the record in rec into block references and main data, with the
 * checks of PostgreSQL's DecodeXLogRecord. Every length is checked against
 * what is left of tot_len before anything is read. */
static int
decode_record(lb_wal_decoder *dec, lb_wal_record *r)
{
    const uint8_t *rec = dec->rec;
    lb_lsn at = dec->rec_lsn;
    uint32_t tot_len = dec->rec_tot_len;
    const uint8_t *p = rec + LB_WAL_RECORD_HEADER_SIZE;
    uint32_t remaining = tot_len - LB_WAL_RECORD_HEADER_SIZE;
    uint64_t datatotal = 0;
    int max_block_id = -1;
    int nblocks = 0;
    const lb_wal_block_ref *rel = NULL;

    memset(r, 0, sizeof(*r));

#define TAKE(dst, size)                                                                            \
    do {                                                                                           \
        if (remaining < (size))                                                                    \
            goto short_data;                                                                       \
        dst = (size) == 1 ? p[0] : (size) == 2 ? get16(p) : get32(p);                              \
        p += (size);                                                                               \
        remaining -= (size);                                                                       \
    } while (0)

    while (remaining > datatotal) {
        uint8_t block_id;
        TAKE(block_id, 1);
        if (block_id == LB_XLR_BLOCK_ID_DATA_SHORT) {
            uint8_t len;
            TAKE(len, 1);
            r->main_data_len = len;
            datatotal += len;
            break; /* main data is always the last fragment */
        } else if (block_id == LB_XLR_BLOCK_ID_DATA_LONG) {
            uint32_t len;
            TAKE(len, 4);
            r->main_data_len = len;
            datatotal += len;
            break;
        } else if (block_id == LB_XLR_BLOCK_ID_ORIGIN) {
            TAKE(r->origin, 2);
            r->has_origin = true;
        } else if (block_id == LB_XLR_BLOCK_ID_TOPLEVEL_XID) {
            TAKE(r->toplevel_xid, 4);
        } else if (block_id <= LB_XLR_MAX_BLOCK_ID) {
            if ((int)block_id <= max_block_id)
                return fail(dec, LB_EPARSE, at, "out-of-order block_id %u in record at " LB_LSN_FMT,
                            block_id, LB_LSN_ARGS(at));
            max_block_id = block_id;
            assert(nblocks <= LB_XLR_MAX_BLOCK_ID);
            lb_wal_block_ref *b = &dec->blocks[nblocks++];
            memset(b, 0, sizeof(*b));
            b->block_id = block_id;
            uint8_t fork_flags;
            TAKE(fork_flags, 1);
            b->fork = fork_flags & LB_BKPBLOCK_FORK_MASK;
            b->flags = fork_flags & 0xF0;
            b->has_image = (fork_flags & LB_BKPBLOCK_HAS_IMAGE) != 0;
            b->has_data = (fork_flags & LB_BKPBLOCK_HAS_DATA) != 0;
            b->will_init = (fork_flags & LB_BKPBLOCK_WILL_INIT) != 0;
            if (b->fork > LB_FORK_INIT)
                return fail(dec, LB_EPARSE, at,
                            "invalid fork number %u for block %u in record at " LB_LSN_FMT, b->fork,
                            block_id, LB_LSN_ARGS(at));
            TAKE(b->data_len, 2);
            if (b->has_data && b->data_len == 0)
                return fail(dec, LB_EPARSE, at,
                            "BKPBLOCK_HAS_DATA set, but no data included in record at " LB_LSN_FMT,
                            LB_LSN_ARGS(at));
            if (!b->has_data && b->data_len != 0)
                return fail(
                    dec, LB_EPARSE, at,
                    "BKPBLOCK_HAS_DATA not set, but data length is %u in record at " LB_LSN_FMT,
                    b->data_len, LB_LSN_ARGS(at));
            datatotal += b->data_len;
            if (b->has_image) {
                TAKE(b->image_len, 2);
                TAKE(b->hole_offset, 2);
                TAKE(b->bimg_info, 1);
                b->apply_image = (b->bimg_info & LB_BKPIMAGE_APPLY) != 0;
                bool compressed = LB_BKPIMAGE_COMPRESSED(b->bimg_info);
                bool has_hole = (b->bimg_info & LB_BKPIMAGE_HAS_HOLE) != 0;
                if (b->image_len > LB_WAL_BLCKSZ)
                    return fail(dec, LB_EPARSE, at,
                                "block image length %u too large in record at " LB_LSN_FMT,
                                b->image_len, LB_LSN_ARGS(at));
                if (compressed) {
                    if (has_hole)
                        TAKE(b->hole_length, 2);
                } else {
                    b->hole_length = (uint16_t)(LB_WAL_BLCKSZ - b->image_len);
                }
                datatotal += b->image_len;
                if (has_hole &&
                    (b->hole_offset == 0 || b->hole_length == 0 || b->image_len == LB_WAL_BLCKSZ ||
                     (uint32_t)b->hole_offset + b->hole_length > LB_WAL_BLCKSZ))
                    return fail(dec, LB_EPARSE, at,
                                "BKPIMAGE_HAS_HOLE set, but hole offset %u length %u block image "
                                "length %u in record at " LB_LSN_FMT,
                                b->hole_offset, b->hole_length, b->image_len, LB_LSN_ARGS(at));
                if (!has_hole && (b->hole_offset != 0 || b->hole_length != 0))
                    return fail(dec, LB_EPARSE, at,
                                "BKPIMAGE_HAS_HOLE not set, but hole offset %u length %u in "
                                "record at " LB_LSN_FMT,
                                b->hole_offset, b->hole_length, LB_LSN_ARGS(at));
                if (compressed && b->image_len == LB_WAL_BLCKSZ)
                    return fail(dec, LB_EPARSE, at,
                                "BKPIMAGE_COMPRESSED set, but block image length %u in record "
                                "at " LB_LSN_FMT,
                                b->image_len, LB_LSN_ARGS(at));
                if (!has_hole && !compressed && b->image_len != LB_WAL_BLCKSZ)
                    return fail(dec, LB_EPARSE, at,
                                "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block "
                                "image length is %u in record at " LB_LSN_FMT,
                                b->image_len, LB_LSN_ARGS(at));
            }
            if (!(fork_flags & LB_BKPBLOCK_SAME_REL)) {
                TAKE(b->spc_node, 4);
                TAKE(b->db_node, 4);
                TAKE(b->rel_node, 4);
                rel = b;
            } else {
                if (!rel)
                    return fail(
                        dec, LB_EPARSE, at,
                        "BKPBLOCK_SAME_REL set but no previous rel in record at " LB_LSN_FMT,
                        LB_LSN_ARGS(at));
                b->spc_node = rel->spc_node;
                b->db_node = rel->db_node;
                b->rel_node = rel->rel_node;
            }
            TAKE(b->blkno, 4);
        } else {
            return fail(dec, LB_EPARSE, at, "invalid block_id %u in record at " LB_LSN_FMT,
                        block_id, LB_LSN_ARGS(at));
        }
    }
#undef TAKE
    if (remaining != datatotal)
        goto short_data;

    /* The payloads follow the headers in the same order. */
    for (int i = 0; i < nblocks; i++) {
        lb_wal_block_ref *b = &dec->blocks[i];
        if (b->has_image) {
            b->image = p;
            p += b->image_len;
        }
        if (b->has_data) {
            b->data = p;
            p += b->data_len;
        }
    }
    if (r->main_data_len > 0) {
        r->main_data = p;
        p += r->main_data_len;
    }
    assert(p == rec + tot_len);
    r->nblocks = nblocks;
    r->blocks = dec->blocks;
    return 0;

short_data:
    return fail(dec, LB_EPARSE, at, "record with invalid length at " LB_LSN_FMT, LB_LSN_ARGS(at));
}

/* The record in rec is complete: verify, decode, and hand it out. */
static int
finish_record(lb_wal_decoder *dec, lb_wal_record *r)
{
    const uint8_t *rec = dec->rec;
    uint32_t tot_len = dec->rec_tot_len;
    assert(dec->rec_got == tot_len && dec->rec_hdr_checked);

    /* CRC over the payload, then the header up to the CRC field. */
    uint32_t crc = LB_CRC32C_INIT;
    crc =
        lb_crc32c_update(crc, rec + LB_WAL_RECORD_HEADER_SIZE, tot_len - LB_WAL_RECORD_HEADER_SIZE);
    crc = lb_crc32c_update(crc, rec, 20);
    crc = LB_CRC32C_FINAL(crc);
    uint32_t stored = get32(rec + 20);
    if (crc != stored)
        return fail(dec, LB_ECRC, dec->rec_lsn, "incorrect checksum in record at " LB_LSN_FMT,
                    LB_LSN_ARGS(dec->rec_lsn));

    int rc = decode_record(dec, r);
    if (rc < 0)
        return rc;

    r->lsn = dec->rec_lsn;
    r->tot_len = tot_len;
    r->xid = get32(rec + 4);
    r->prev_lsn = get64(rec + 8);
    r->info = rec[16];
    r->rmid = rec[17];
    r->crc = stored;
    r->raw = rec;

    lb_lsn end = LB_WAL_MAXALIGN(dec->pos);
    if (r->rmid == LB_RM_XLOG_ID && (r->info & ~LB_XLR_INFO_MASK) == LB_XLOG_SWITCH) {
        /* The rest of the segment is padding. */
        end += dec->seg_size - 1;
        end -= end % dec->seg_size;
    }
    r->end_lsn = end;

    dec->state = ST_SKIP;
    dec->skip_to = end;
    dec->prev_known = true;
    dec->prev_lsn = dec->rec_lsn;
    dec->valid_end = end;
    dec->record_out = true;
    return 0;
}

/* Read record bytes up to the end of the page, the record or the input.
 * 1 when the record is complete, 0 otherwise, or an error. */
static int
read_record(lb_wal_decoder *dec)
{
    uint64_t page_left = LB_WAL_BLCKSZ - dec->pos % LB_WAL_BLCKSZ;
    assert(page_left > 0 && page_left < LB_WAL_BLCKSZ);
    /* Up to the header first, so that tot_len is checked before it is used. */
    uint32_t target =
        dec->rec_got < LB_WAL_RECORD_HEADER_SIZE ? LB_WAL_RECORD_HEADER_SIZE : dec->rec_tot_len;
    size_t n = target - dec->rec_got;
    if (n > page_left)
        n = page_left;
    if (n > dec->in_len)
        n = dec->in_len;
    if (n == 0)
        return 0;
    int rc = rec_reserve(dec, n);
    if (rc < 0)
        return fail(dec, rc, dec->rec_lsn, "out of memory reading record at " LB_LSN_FMT,
                    LB_LSN_ARGS(dec->rec_lsn));
    memcpy(dec->rec + dec->rec_got, dec->in, n);
    dec->rec_got += (uint32_t)n;
    consume(dec, n);

    if (dec->rec_got >= 4)
        dec->rec_tot_len = get32(dec->rec);
    bool page_done = dec->pos % LB_WAL_BLCKSZ == 0;
    if (!dec->rec_hdr_checked &&
        (dec->rec_got >= LB_WAL_RECORD_HEADER_SIZE || (page_done && dec->rec_got >= 4))) {
        rc = check_record_header(dec);
        if (rc < 0)
            return rc;
    }
    return dec->rec_hdr_checked && dec->rec_got == dec->rec_tot_len;
}

static void
release_record(lb_wal_decoder *dec)
{
    if (!dec->record_out)
        return;
    dec->record_out = false;
    if (dec->rec_cap > REC_BUF_KEEP) {
        free(dec->rec);
        dec->rec = NULL;
        dec->rec_cap = 0;
    }
}

int
lb_wal_decoder_next(lb_wal_decoder *dec, lb_wal_record *r)
{
    assert(dec && r);
    release_record(dec);
    for (;;) {
        if (dec->state == ST_FAILED)
            return dec->err;
        if (dec->state != ST_SKIP && (dec->phdr_got > 0 || dec->pos % LB_WAL_BLCKSZ == 0)) {
            int rc = read_page_header(dec);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            continue;
        }
        switch (dec->state) {
        case ST_REC_START:
            assert(dec->pos % 8 == 0 && dec->pos % LB_WAL_BLCKSZ >= LB_WAL_SHORT_PHD_SIZE);
            dec->rec_lsn = dec->pos;
            dec->rec_got = 0;
            dec->rec_tot_len = 0;
            dec->rec_hdr_checked = false;
            dec->may_skip_cont = false;
            dec->state = ST_REC;
            continue;
        case ST_REC: {
            if (dec->in_len == 0)
                goto need_more;
            int rc = read_record(dec);
            if (rc < 0)
                return rc;
            if (rc == 1)
                return finish_record(dec, r);
            continue;
        }
        case ST_SKIP: {
            assert(dec->skip_to >= dec->pos);
            uint64_t n = dec->skip_to - dec->pos;
            if (n > dec->in_len)
                n = dec->in_len;
            consume(dec, n);
            if (dec->pos == dec->skip_to) {
                dec->state = ST_REC_START;
                continue;
            }
            goto need_more;
        }
        case ST_SKIP_CONT: {
            assert(dec->cont_left > 0);
            if (dec->in_len == 0)
                goto need_more;
            uint64_t n = LB_WAL_BLCKSZ - dec->pos % LB_WAL_BLCKSZ;
            if (n > dec->cont_left)
                n = dec->cont_left;
            if (n > dec->in_len)
                n = dec->in_len;
            consume(dec, n);
            dec->cont_left -= (uint32_t)n;
            if (dec->cont_left == 0) {
                /* The next record starts aligned after the tail. */
                dec->skip_to = LB_WAL_MAXALIGN(dec->pos);
                dec->state = ST_SKIP;
            }
            continue;
        }
        case ST_FAILED:
            break;
        }
    }
need_more:
    assert(dec->in_len == 0);
    dec->in = NULL;
    return LB_ETRUNCATED;
}

/* ---- resource managers and transactions --------------------------------- */

static const char *const rmgr_names[LB_RM_MAX_BUILTIN_ID + 1] = {
    "XLOG",       "Transaction",    "Storage", "CLOG",     "Database",
    "Tablespace", "MultiXact",      "RelMap",  "Standby",  "Heap2",
    "Heap",       "Btree",          "Hash",    "Gin",      "Gist",
    "Sequence",   "SPGist",         "BRIN",    "CommitTs", "ReplicationOrigin",
    "Generic",    "LogicalMessage",
};

/* "custom120" .. "custom259"; ids 128..255 are used. */
#define CUSTOM_DIGIT(p, d) "custom" #p #d
#define CUSTOM_TEN(p)                                                                              \
    CUSTOM_DIGIT(p, 0), CUSTOM_DIGIT(p, 1), CUSTOM_DIGIT(p, 2), CUSTOM_DIGIT(p, 3),                \
        CUSTOM_DIGIT(p, 4), CUSTOM_DIGIT(p, 5), CUSTOM_DIGIT(p, 6), CUSTOM_DIGIT(p, 7),            \
        CUSTOM_DIGIT(p, 8), CUSTOM_DIGIT(p, 9)
static const char *const custom_names[] = {
    CUSTOM_TEN(12), CUSTOM_TEN(13), CUSTOM_TEN(14), CUSTOM_TEN(15), CUSTOM_TEN(16),
    CUSTOM_TEN(17), CUSTOM_TEN(18), CUSTOM_TEN(19), CUSTOM_TEN(20), CUSTOM_TEN(21),
    CUSTOM_TEN(22), CUSTOM_TEN(23), CUSTOM_TEN(24), CUSTOM_TEN(25),
};

const char *
lb_wal_rmgr_name(uint8_t rmid)
{
    if (rmid <= LB_RM_MAX_BUILTIN_ID)
        return rmgr_names[rmid];
    if (rmid >= LB_RM_MIN_CUSTOM_ID) {
        assert(rmid - 120 < (int)(sizeof(custom_names) / sizeof(custom_names[0])));
        return custom_names[rmid - 120];
    }
    return NULL;
}

/* xact record kinds (info & XLOG_XACT_OPMASK) */
#define XLOG_XACT_OPMASK 0x70u
#define XLOG_XACT_COMMIT 0x00u
#define XLOG_XACT_ABORT 0x20u
#define XLOG_XACT_COMMIT_PREPARED 0x30u
#define XLOG_XACT_ABORT_PREPARED 0x40u

int
lb_wal_xact_parse(const lb_wal_record *rec, lb_wal_xact_kind *kind, int64_t *xact_time)
{
    assert(rec && kind);
    *kind = LB_WAL_XACT_NONE;
    if (rec->rmid != LB_RM_XACT_ID)
        return 0;
    lb_wal_xact_kind k;
    switch (rec->info & XLOG_XACT_OPMASK) {
    case XLOG_XACT_COMMIT:
        k = LB_WAL_XACT_COMMIT;
        break;
    case XLOG_XACT_ABORT:
        k = LB_WAL_XACT_ABORT;
        break;
    case XLOG_XACT_COMMIT_PREPARED:
        k = LB_WAL_XACT_COMMIT_PREPARED;
        break;
    case XLOG_XACT_ABORT_PREPARED:
        k = LB_WAL_XACT_ABORT_PREPARED;
        break;
    default:
        return 0;
    }
    /* xl_xact_commit and xl_xact_abort both start with TimestampTz xact_time. */
    if (rec->main_data_len < 8 || !rec->main_data)
        return LB_EPARSE;
    *kind = k;
    if (xact_time)
        *xact_time = (int64_t)get64(rec->main_data);
    return 0;
}
