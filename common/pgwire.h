/*
 * pgwire.h: PostgreSQL frontend/backend protocol (version 3.0) framing.
 *
 * Pure functions over byte buffers, no sockets: callers own their I/O loop.
 * Every parser is bounds-checked against the bytes it was given and against
 * a maximum message length, because the bytes come from the network: a
 * malformed or hostile message yields LB_EPROTO, never an out-of-bounds read.
 *
 * Callers:
 *   - safekeeper: its walsender-compatible server (startup, simple queries,
 *     RowDescription/DataRow, CopyBoth with XLogData and keepalives) and the
 *     standby status updates it reads back;
 *   - proxy: startup packet, SSLRequest, CancelRequest, ErrorResponse;
 *   - tests that speak the protocol by hand.
 */
#ifndef LB_PGWIRE_H
#define LB_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lsn.h"

#define LB_PQ_PROTOCOL_3_0 196608 /* 3 << 16 */
#define LB_PQ_SSL_REQUEST 80877103
#define LB_PQ_GSSENC_REQUEST 80877104
#define LB_PQ_CANCEL_REQUEST 80877102
/* Largest message accepted by default. PostgreSQL's own limit for most
 * messages is far smaller; CopyData with WAL is at most a few MB. */
#define LB_PQ_MAX_MESSAGE (64u * 1024 * 1024)
#define LB_PQ_MAX_STARTUP 10000 /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */

/* ---- reading ------------------------------------------------------------ */

/* A cursor over a message body. Getters return LB_EPROTO when the body is
 * too short or a string is not NUL-terminated; the cursor is then unusable. */
typedef struct lb_pq_reader {
    const uint8_t *p;
    size_t left;
} lb_pq_reader;

void lb_pq_reader_init(lb_pq_reader *r, const void *body, size_t len);
int lb_pq_get_u8(lb_pq_reader *r, uint8_t *v);
int lb_pq_get_i16(lb_pq_reader *r, int16_t *v);
int lb_pq_get_i32(lb_pq_reader *r, int32_t *v);
int lb_pq_get_i64(lb_pq_reader *r, int64_t *v);
/* *s points into the body (valid as long as it is); no copy. */
int lb_pq_get_str(lb_pq_reader *r, const char **s);
int lb_pq_get_bytes(lb_pq_reader *r, size_t n, const uint8_t **bytes);

/* A typed message: 1 type byte, an int32 length that counts itself, a body. */
typedef struct lb_pq_msg {
    char type;
    const uint8_t *body; /* points into the input */
    size_t len;          /* body length */
} lb_pq_msg;

/* Parse one typed message from the start of bytes[0..n). Returns 0 and sets
 * *msg and *consumed; LB_ETRUNCATED when more bytes are needed; LB_EPROTO for
 * a length below 4 or above max_len (0 = LB_PQ_MAX_MESSAGE). */
int lb_pq_parse_msg(const void *bytes, size_t n, size_t max_len, lb_pq_msg *msg, size_t *consumed);

/* The first message a client sends: no type byte. */
typedef enum lb_pq_startup_kind {
    LB_PQ_STARTUP,
    LB_PQ_SSL,
    LB_PQ_GSSENC,
    LB_PQ_CANCEL,
} lb_pq_startup_kind;

#define LB_PQ_MAX_PARAMS 64
typedef struct lb_pq_startup {
    lb_pq_startup_kind kind;
    int32_t protocol;
    int nparams;
    const char *names[LB_PQ_MAX_PARAMS]; /* point into the input */
    const char *values[LB_PQ_MAX_PARAMS];
    int32_t cancel_pid, cancel_key; /* LB_PQ_CANCEL */
} lb_pq_startup;

/* Parse a startup-phase packet. Same return convention as lb_pq_parse_msg.
 * Refuses protocol versions other than 3.x, duplicate or empty parameter
 * names, and missing terminators. */
int lb_pq_parse_startup(const void *bytes, size_t n, lb_pq_startup *st, size_t *consumed);
/* Value of a startup parameter, or NULL. */
const char *lb_pq_startup_param(const lb_pq_startup *st, const char *name);

/* Fields of an ErrorResponse or NoticeResponse (pointers into the body). */
typedef struct lb_pq_error {
    const char *severity; /* 'S' */
    const char *sqlstate; /* 'C' */
    const char *message;  /* 'M' */
    const char *detail;   /* 'D', may be NULL */
} lb_pq_error;
int lb_pq_parse_error(const lb_pq_msg *msg, lb_pq_error *err);

/* ---- writing ------------------------------------------------------------ */

/* Build a message in out: begin, put fields, end (which patches the length).
 * Several messages can be built one after another in the same buffer.
 * All return 0 or -ENOMEM. */
int lb_pq_begin(lb_buf *out, char type, size_t *start);
int lb_pq_put_u8(lb_buf *out, uint8_t v);
int lb_pq_put_i16(lb_buf *out, int16_t v);
int lb_pq_put_i32(lb_buf *out, int32_t v);
int lb_pq_put_i64(lb_buf *out, int64_t v);
int lb_pq_put_str(lb_buf *out, const char *s);
int lb_pq_put_bytes(lb_buf *out, const void *bytes, size_t n);
void lb_pq_end(lb_buf *out, size_t start);

/* Whole messages a server sends. */
int lb_pq_put_error(lb_buf *out, const char *severity, const char *sqlstate, const char *message,
                    const char *detail);
int lb_pq_put_auth_ok(lb_buf *out);
/* AuthenticationCleartextPassword: the client answers with a PasswordMessage. */
int lb_pq_put_auth_cleartext(lb_buf *out);
int lb_pq_put_parameter_status(lb_buf *out, const char *name, const char *value);
int lb_pq_put_ready(lb_buf *out, char txn_status);
int lb_pq_put_command_complete(lb_buf *out, const char *tag);
/* RowDescription with text columns: names[i] with type oids[i]. */
int lb_pq_put_row_description(lb_buf *out, int ncols, const char *const names[],
                              const uint32_t oids[]);
/* DataRow of text values; a NULL value is sent as SQL NULL. */
int lb_pq_put_data_row(lb_buf *out, int ncols, const char *const values[]);
/* CopyBothResponse (W) for physical replication: binary, zero columns. */
int lb_pq_put_copy_both(lb_buf *out);
/* A client's startup packet (protocol 3.0) with NULL-terminated name/value pairs. */
int lb_pq_put_startup(lb_buf *out, const char *const params[]);
/* A client's PasswordMessage ('p'): the answer to AuthenticationCleartextPassword. */
int lb_pq_put_password(lb_buf *out, const char *password);

/* ---- streaming replication messages (inside CopyData) ------------------ */

#define LB_PQ_XLOGDATA_HDR 25 /* 'w' + start + end + send time */

typedef struct lb_pq_repl {
    char kind; /* 'w' XLogData, 'k' keepalive, 'r' standby status, 'h' hot standby feedback */
    /* 'w' */
    lb_lsn wal_start;
    lb_lsn wal_end;
    const uint8_t *wal; /* points into the input */
    size_t wal_len;
    /* 'k': wal_end, reply_requested; 'r': write/flush/apply, reply_requested */
    lb_lsn write_lsn, flush_lsn, apply_lsn;
    int64_t send_time; /* microseconds since 2000-01-01 UTC */
    bool reply_requested;
    /* 'h' */
    uint32_t xmin, xmin_epoch, catalog_xmin, catalog_xmin_epoch;
} lb_pq_repl;

/* Parse the payload of a CopyData message. LB_EPROTO on a short payload or
 * an unknown kind. */
int lb_pq_parse_repl(const void *bytes, size_t n, lb_pq_repl *rm);
/* CopyData messages carrying replication messages. */
int lb_pq_put_xlogdata(lb_buf *out, lb_lsn start, lb_lsn end, int64_t now, const void *wal,
                       size_t n);
int lb_pq_put_keepalive(lb_buf *out, lb_lsn wal_end, int64_t now, bool reply_requested);
int lb_pq_put_standby_status(lb_buf *out, lb_lsn write, lb_lsn flush, lb_lsn apply, int64_t now,
                             bool reply_requested);

/* Now, in PostgreSQL's replication clock: microseconds since 2000-01-01 UTC. */
int64_t lb_pq_now(void);

#endif
