/*
 * wal.h: PostgreSQL 15 write-ahead log, generic record format.
 *
 * Decodes what every WAL record has in common (segment and page headers,
 * the record header with its CRC-32C, block references, main data) with no
 * resource-manager-specific redo. The only rmgr knowledge here is the name
 * of each resource manager and the timestamp of commit and abort records.
 *
 * Exports, by caller:
 *   - safekeeper: segment names, lb_wal_decoder to find record boundaries and
 *     the end of valid WAL (lb_wal_decoder_valid_end) before truncating a
 *     divergent tail or serving WAL;
 *   - pageserver: lb_wal_decoder for the WAL block index (which relation
 *     block changed at which LSN, by which xid) and lb_wal_xact_parse for
 *     the commit index used by PITR;
 *   - tests and tools: page header parsing, rmgr names.
 *
 * Return codes of lb_wal_decoder_next():
 *   0               a record; valid until the next call on the decoder
 *   LB_ETRUNCATED   every byte fed so far is consumed: feed more
 *   LB_WAL_END      clean end of WAL: zeroed space, or a page left over from
 *                   a recycled segment (what PostgreSQL leaves past its end)
 *   LB_ECRC         a record whose checksum does not match
 *   LB_EPARSE       a malformed page header or record
 *   LB_ETOOBIG      a record longer than PostgreSQL allows
 *   -ENOMEM         no memory for the record being read
 * All but the first two are sticky. lb_wal_decoder_errmsg() says what and
 * where, lb_wal_decoder_error_lsn() the record or page it is about.
 */
#ifndef LB_WAL_H
#define LB_WAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* ---- format constants (PostgreSQL 15) ----------------------------------- */

#define LB_WAL_BLCKSZ 8192u           /* XLOG_BLCKSZ */
#define LB_WAL_PAGE_MAGIC 0xD110u     /* XLOG_PAGE_MAGIC of PostgreSQL 15 */
#define LB_WAL_SHORT_PHD_SIZE 24u     /* SizeOfXLogShortPHD */
#define LB_WAL_LONG_PHD_SIZE 40u      /* SizeOfXLogLongPHD */
#define LB_WAL_RECORD_HEADER_SIZE 24u /* SizeOfXLogRecord */
#define LB_WAL_SEG_SIZE_DEFAULT (16u * 1024 * 1024)
#define LB_WAL_SEG_SIZE_MIN (1u * 1024 * 1024)
#define LB_WAL_SEG_SIZE_MAX (1024u * 1024 * 1024)
#define LB_WAL_MAX_RECORD 0x3FFFFFFFu /* MaxAllocSize: the reader's limit */
#define LB_WAL_SEG_NAME_LEN 24        /* "%08X%08X%08X" */
#define LB_WAL_MAXALIGN(x) (((uint64_t)(x) + 7) & ~(uint64_t)7)

/* xlp_info bits */
#define LB_XLP_FIRST_IS_CONTRECORD 0x0001u
#define LB_XLP_LONG_HEADER 0x0002u
#define LB_XLP_BKP_REMOVABLE 0x0004u
#define LB_XLP_FIRST_IS_OVERWRITE_CONTRECORD 0x0008u
#define LB_XLP_ALL_FLAGS 0x000Fu

/* xl_info: low bits belong to the record machinery, high bits to the rmgr */
#define LB_XLR_INFO_MASK 0x0Fu
#define LB_XLR_RMGR_INFO_MASK 0xF0u

/* Fragment ids inside a record */
#define LB_XLR_MAX_BLOCK_ID 32
#define LB_XLR_BLOCK_ID_DATA_SHORT 255
#define LB_XLR_BLOCK_ID_DATA_LONG 254
#define LB_XLR_BLOCK_ID_ORIGIN 253
#define LB_XLR_BLOCK_ID_TOPLEVEL_XID 252

/* fork_flags of a block reference */
#define LB_BKPBLOCK_FORK_MASK 0x0Fu
#define LB_BKPBLOCK_HAS_IMAGE 0x10u
#define LB_BKPBLOCK_HAS_DATA 0x20u
#define LB_BKPBLOCK_WILL_INIT 0x40u
#define LB_BKPBLOCK_SAME_REL 0x80u

/* bimg_info of a full-page image */
#define LB_BKPIMAGE_HAS_HOLE 0x01u
#define LB_BKPIMAGE_APPLY 0x02u
#define LB_BKPIMAGE_COMPRESS_PGLZ 0x04u
#define LB_BKPIMAGE_COMPRESS_LZ4 0x08u
#define LB_BKPIMAGE_COMPRESS_ZSTD 0x10u
#define LB_BKPIMAGE_COMPRESSED(info)                                                               \
    (((info) &                                                                                     \
      (LB_BKPIMAGE_COMPRESS_PGLZ | LB_BKPIMAGE_COMPRESS_LZ4 | LB_BKPIMAGE_COMPRESS_ZSTD)) != 0)

/* Forks */
#define LB_FORK_MAIN 0
#define LB_FORK_FSM 1
#define LB_FORK_VM 2
#define LB_FORK_INIT 3

/* Resource managers used by the decoder itself */
#define LB_RM_XLOG_ID 0
#define LB_RM_XACT_ID 1
#define LB_RM_LOGICALMSG_ID 21
#define LB_RM_MAX_BUILTIN_ID 21
#define LB_RM_MIN_CUSTOM_ID 128
#define LB_XLOG_SWITCH 0x40u
#define LB_XLOG_OVERWRITE_CONTRECORD 0xD0u

/* Clean end of WAL (see the return codes above). */
#define LB_WAL_END (-ENODATA)

/* ---- segments (safekeeper, pageserver) ---------------------------------- */

/* A power of two from 1 MiB to 1 GiB, as initdb --wal-segsize allows. */
bool lb_wal_seg_size_valid(uint64_t seg_size);

static inline uint64_t
lb_wal_segno(lb_lsn lsn, uint32_t seg_size)
{
    return lsn / seg_size;
}

static inline lb_lsn
lb_wal_segment_start(uint64_t segno, uint32_t seg_size)
{
    return segno * seg_size;
}

/* "TTTTTTTTXXXXXXXXYYYYYYYY" into name (LB_WAL_SEG_NAME_LEN + 1 bytes).
 * Returns 0, or -EINVAL for a bad segment size or a segment number past the
 * end of the 64-bit LSN space. */
int lb_wal_segment_name(char *name, uint32_t tli, uint64_t segno, uint32_t seg_size);
/* The reverse: exactly 24 upper-case hex digits, timeline not 0, segment
 * part below the number of segments per 4 GiB. Returns 0 or LB_EPARSE. */
int lb_wal_segment_parse(const char *name, uint32_t seg_size, uint32_t *tli, uint64_t *segno);
/* "TTTTTTTT.history": exactly 8 upper-case hex digits, timeline not 0
 * (no sign, no space: "+0000001.history" is refused). 0 or LB_EPARSE. */
int lb_wal_history_parse(const char *name, uint32_t *tli);

/* A file a restore_command may ask for: a segment or a history file. */
typedef enum lb_wal_file_kind {
    LB_WAL_FILE_BAD = 0,
    LB_WAL_FILE_SEGMENT,
    LB_WAL_FILE_HISTORY,
} lb_wal_file_kind;
/* Either of the two above; *segno is set for a segment only (tli, segno
 * may be NULL). */
lb_wal_file_kind lb_wal_file_parse(const char *name, uint32_t seg_size, uint32_t *tli,
                                   uint64_t *segno);

/* ---- how much of a served segment is WAL (safekeeper, pageserver, compute) -- */

/* A segment is always served whole, as restore_command wants it, but the
 * one holding the end of committed WAL is WAL only up to that end and zero
 * after it. Whoever serves a segment says how much of it is WAL in two
 * response headers; whoever fetches it from several sources (a safekeeper
 * just restarted may serve it cut at a stale commit LSN) keeps asking
 * while an answer falls short, takes the best with lb_wal_valid_better(),
 * and checks it with lb_wal_valid_covers(). A zero-filled tail is never
 * taken for WAL that a source does not vouch for. */
#define LB_WAL_VALID_BYTES_HEADER "Lakebase-Valid-Bytes" /* decimal, from the segment start */
#define LB_WAL_VALID_FINAL_HEADER "Lakebase-Valid-Final" /* "true": no source has more */

typedef struct lb_wal_valid {
    uint64_t bytes; /* WAL from the segment's start; zeros after it */
    bool final;     /* this file never holds more WAL: it is whole, or its
                     * PostgreSQL timeline (or a branch point) ends at bytes */
} lb_wal_valid;

/* From the two header values (NULL when absent). No bytes header: a
 * source that does not say serves whole segments (object storage). 0, or
 * LB_EPROTO for a value that is not a number of at most seg_size. */
int lb_wal_valid_parse(const char *bytes, const char *final, uint32_t seg_size, lb_wal_valid *out);
/* The header values for v (bytes needs 21 chars); final is NULL when the
 * header is to be left out. */
void lb_wal_valid_format(const lb_wal_valid *v, uint32_t seg_size, char bytes[21],
                         const char **final);
/* Whether a is a better answer than b: more WAL, or as much and final. */
bool lb_wal_valid_better(const lb_wal_valid *a, const lb_wal_valid *b);
/* Whether no other source can have more of the segment: stop asking. */
bool lb_wal_valid_complete(const lb_wal_valid *v, uint32_t seg_size);
/* Whether v covers the WAL before need in segment segno: it is final, or
 * it holds every byte of the segment below need. need 0: nothing is
 * needed, any answer covers. */
bool lb_wal_valid_covers(const lb_wal_valid *v, uint64_t segno, uint32_t seg_size, lb_lsn need);

/* ---- page headers (decoder, tools) -------------------------------------- */

typedef struct lb_wal_page_header {
    uint16_t magic;
    uint16_t info;    /* LB_XLP_* */
    uint32_t tli;     /* timeline of the first record on the page */
    lb_lsn pageaddr;  /* LSN of the page's first byte */
    uint32_t rem_len; /* bytes of a record continued from the previous page */
    bool is_long;     /* the rest only when set (first page of a segment) */
    uint64_t sysid;
    uint32_t seg_size;
    uint32_t blcksz;
    uint32_t size; /* LB_WAL_SHORT_PHD_SIZE or LB_WAL_LONG_PHD_SIZE */
} lb_wal_page_header;

/* Parse the header at the start of page[0..len). Checks what needs no
 * context: magic, info bits, and in a long header a valid segment size and
 * a block size of 8192. Returns 0, LB_ETRUNCATED if len is too short for the
 * header, LB_WAL_END if the header is all zeros, or LB_EPARSE. */
int lb_wal_page_header_parse(const void *page, size_t len, lb_wal_page_header *hdr);

/* ---- records (safekeeper, pageserver) ----------------------------------- */

typedef struct lb_wal_block_ref {
    uint8_t block_id;  /* 0..LB_XLR_MAX_BLOCK_ID */
    uint8_t fork;      /* LB_FORK_* (0..15 as stored) */
    uint8_t flags;     /* LB_BKPBLOCK_* bits as stored */
    uint32_t spc_node; /* RelFileNode; copied from the previous block when SAME_REL */
    uint32_t db_node;
    uint32_t rel_node;
    uint32_t blkno;
    bool has_image;
    bool apply_image; /* image is restored on replay (not only for checking) */
    bool has_data;
    bool will_init;
    uint16_t data_len;
    const uint8_t *data; /* data_len bytes, or NULL */
    /* Only when has_image: */
    uint16_t image_len; /* stored bytes (compressed or with the hole removed) */
    uint16_t hole_offset;
    uint16_t hole_length;
    uint8_t bimg_info; /* LB_BKPIMAGE_* */
    const uint8_t *image;
} lb_wal_block_ref;

typedef struct lb_wal_record {
    lb_lsn lsn;      /* start of the record header */
    lb_lsn end_lsn;  /* PostgreSQL's EndRecPtr: MAXALIGNed end; for XLOG_SWITCH
                      * the start of the next segment */
    lb_lsn prev_lsn; /* xl_prev */
    uint32_t tot_len;
    uint32_t xid;
    uint8_t info;
    uint8_t rmid;
    uint32_t crc;
    bool has_origin;
    uint16_t origin;
    uint32_t toplevel_xid; /* 0 when the record carries none */
    int nblocks;           /* block references in use, in block id order */
    const lb_wal_block_ref *blocks;
    uint32_t main_data_len;
    const uint8_t *main_data; /* NULL when main_data_len is 0 */
    const uint8_t *raw;       /* the whole record, tot_len contiguous bytes */
} lb_wal_record;

typedef struct lb_wal_decoder lb_wal_decoder;

/* Start decoding at start_lsn, which is either a page (or segment) start or
 * the start of a record. From a page start, a record continued from the
 * previous page is skipped, as pg_waldump does. Returns 0 and a decoder the
 * caller frees with lb_wal_decoder_free(); -EINVAL for a bad segment size or
 * an LSN that cannot start a record; -ENOMEM. */
int lb_wal_decoder_new(lb_lsn start_lsn, uint32_t seg_size, lb_wal_decoder **dec);
void lb_wal_decoder_free(lb_wal_decoder *dec);

/* Optional checks, before the first call to next(): the LSN of the record
 * before start_lsn (otherwise the first record's xl_prev is only required
 * to be below it), and the database system id (otherwise learned from the
 * first long page header; every later one must match). */
void lb_wal_decoder_expect_prev(lb_wal_decoder *dec, lb_lsn prev_lsn);
void lb_wal_decoder_expect_sysid(lb_wal_decoder *dec, uint64_t sysid);

/* Give the decoder the next n bytes of WAL, starting at
 * lb_wal_decoder_feed_lsn(). The decoder borrows them (no copy) until next()
 * returns LB_ETRUNCATED: keep them valid and unchanged until then. Returns
 * 0, or -EBUSY if bytes fed earlier are not yet consumed. */
int lb_wal_decoder_feed(lb_wal_decoder *dec, const void *bytes, size_t n);

/* Decode the next record into *rec. See the return codes at the top. The
 * record, its block references and every data pointer in it point into the
 * decoder and stay valid only until the next lb_wal_decoder_next() or
 * lb_wal_decoder_free(). Memory held: one record (never more than twice the
 * bytes fed for it, whatever its tot_len claims) plus a page header. */
int lb_wal_decoder_next(lb_wal_decoder *dec, lb_wal_record *rec);

/* LSN of the next byte the decoder expects to be fed. */
lb_lsn lb_wal_decoder_feed_lsn(const lb_wal_decoder *dec);
/* End of valid WAL so far: end_lsn of the last record returned, or the
 * start LSN when none was. A divergent tail is truncated here. */
lb_lsn lb_wal_decoder_valid_end(const lb_wal_decoder *dec);
/* After an error or LB_WAL_END: where it was found (record or page start),
 * and a one-line message naming it, e.g.
 * "incorrect checksum in record at 0/16B3F10". "" before any error. */
lb_lsn lb_wal_decoder_error_lsn(const lb_wal_decoder *dec);
const char *lb_wal_decoder_errmsg(const lb_wal_decoder *dec);
/* System id and timeline seen in page headers (0 before any). */
uint64_t lb_wal_decoder_sysid(const lb_wal_decoder *dec);
uint32_t lb_wal_decoder_tli(const lb_wal_decoder *dec);

/* ---- resource managers and transactions (pageserver) -------------------- */

/* "Heap", "Btree", ... as pg_waldump prints them; "custom%03d" for custom
 * rmgr ids 128..255; NULL for unassigned ids. Static storage. */
const char *lb_wal_rmgr_name(uint8_t rmid);

typedef enum lb_wal_xact_kind {
    LB_WAL_XACT_NONE = 0, /* not a commit or abort record */
    LB_WAL_XACT_COMMIT,
    LB_WAL_XACT_ABORT,
    LB_WAL_XACT_COMMIT_PREPARED,
    LB_WAL_XACT_ABORT_PREPARED,
} lb_wal_xact_kind;

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC). */
#define LB_PG_EPOCH_UNIX_USEC INT64_C(946684800000000)

/* Recognise a transaction commit or abort record (rmid Transaction, info &
 * XLOG_XACT_OPMASK) and read its xact_time, microseconds since 2000-01-01
 * UTC. Returns 0 (with LB_WAL_XACT_NONE for any other record) or LB_EPARSE
 * when the main data is too short to hold the timestamp. xact_time may be
 * NULL. For a commit or abort the transaction is rec->xid; for the prepared
 * variants the prepared xid is in the main data, which is not parsed here. */
int lb_wal_xact_parse(const lb_wal_record *rec, lb_wal_xact_kind *kind, int64_t *xact_time);

#endif
