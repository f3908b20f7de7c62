/*
 * pgwire.c: PostgreSQL protocol 3.0 framing (see pgwire.h).
 *
 * All integers on the wire are big-endian. Readers never trust a length
 * field: every access is checked against the bytes actually present, and a
 * message longer than the caller's limit is refused before any of it is
 * buffered, so a peer cannot make us allocate without bound.
 */
#include "pgwire.h"
#include "errors.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/time.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_OFFSET_SECS 946684800LL

static uint32_t
be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t
be64(const uint8_t *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

void
lb_pq_reader_init(lb_pq_reader *r, const void *body, size_t len)
{
    r->p = body;
    r->left = len;
}

int
lb_pq_get_bytes(lb_pq_reader *r, size_t n, const uint8_t **bytes)
{
    if (r->left < n)
        return LB_EPROTO;
    *bytes = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

int
lb_pq_get_u8(lb_pq_reader *r, uint8_t *v)
{
    const uint8_t *p;
    if (lb_pq_get_bytes(r, 1, &p))
        return LB_EPROTO;
    *v = p[0];
    return 0;
}

int
lb_pq_get_i16(lb_pq_reader *r, int16_t *v)
{
    const uint8_t *p;
    if (lb_pq_get_bytes(r, 2, &p))
        return LB_EPROTO;
    *v = (int16_t)(((uint16_t)p[0] << 8) | p[1]);
    return 0;
}

int
lb_pq_get_i32(lb_pq_reader *r, int32_t *v)
{
    const uint8_t *p;
    if (lb_pq_get_bytes(r, 4, &p))
        return LB_EPROTO;
    *v = (int32_t)be32(p);
    return 0;
}

int
lb_pq_get_i64(lb_pq_reader *r, int64_t *v)
{
    const uint8_t *p;
    if (lb_pq_get_bytes(r, 8, &p))
        return LB_EPROTO;
    *v = (int64_t)be64(p);
    return 0;
}

int
lb_pq_get_str(lb_pq_reader *r, const char **s)
{
    const uint8_t *nul = memchr(r->p, '\0', r->left);
    if (!nul)
        return LB_EPROTO;
    *s = (const char *)r->p;
    size_t n = (size_t)(nul - r->p) + 1;
    r->p += n;
    r->left -= n;
    return 0;
}

int
lb_pq_parse_msg(const void *bytes, size_t n, size_t max_len, lb_pq_msg *msg, size_t *consumed)
{
    const uint8_t *p = bytes;
    if (max_len == 0)
        max_len = LB_PQ_MAX_MESSAGE;
    if (n < 5)
        return LB_ETRUNCATED;
    uint32_t len = be32(p + 1);
    if (len < 4 || len - 4 > max_len)
        return LB_EPROTO;
    if (n - 1 < len)
        return LB_ETRUNCATED;
    msg->type = (char)p[0];
    msg->body = p + 5;
    msg->len = len - 4;
    *consumed = 1 + (size_t)len;
    return 0;
}

int
lb_pq_parse_startup(const void *bytes, size_t n, lb_pq_startup *st, size_t *consumed)
{
    const uint8_t *p = bytes;
    if (n < 4)
        return LB_ETRUNCATED;
    uint32_t len = be32(p);
    if (len < 8 || len > LB_PQ_MAX_STARTUP)
        return LB_EPROTO;
    if (n < len)
        return LB_ETRUNCATED;

    lb_pq_reader r;
    lb_pq_reader_init(&r, p + 4, len - 4);
    int32_t code;
    (void)lb_pq_get_i32(&r, &code); /* len >= 8 guarantees it is there */
    memset(st, 0, sizeof(*st));
    st->protocol = code;

    switch (code) {
    case LB_PQ_SSL_REQUEST:
    case LB_PQ_GSSENC_REQUEST:
        if (len != 8)
            return LB_EPROTO;
        st->kind = code == LB_PQ_SSL_REQUEST ? LB_PQ_SSL : LB_PQ_GSSENC;
        break;
    case LB_PQ_CANCEL_REQUEST:
        if (len != 16)
            return LB_EPROTO;
        st->kind = LB_PQ_CANCEL;
        (void)lb_pq_get_i32(&r, &st->cancel_pid);
        (void)lb_pq_get_i32(&r, &st->cancel_key);
        break;
    default:
        if ((code >> 16) != 3)
            return LB_EPROTO;
        st->kind = LB_PQ_STARTUP;
        for (;;) {
            const char *name, *value;
            if (lb_pq_get_str(&r, &name))
                return LB_EPROTO;
            if (name[0] == '\0')
                break;
            if (lb_pq_get_str(&r, &value) || st->nparams == LB_PQ_MAX_PARAMS)
                return LB_EPROTO;
            for (int i = 0; i < st->nparams; i++)
                if (strcmp(st->names[i], name) == 0)
                    return LB_EPROTO;
            st->names[st->nparams] = name;
            st->values[st->nparams] = value;
            st->nparams++;
        }
        if (r.left != 0)
            return LB_EPROTO; /* bytes after the terminator */
        break;
    }
    *consumed = len;
    return 0;
}

const char *
lb_pq_startup_param(const lb_pq_startup *st, const char *name)
{
    for (int i = 0; i < st->nparams; i++)
        if (strcmp(st->names[i], name) == 0)
            return st->values[i];
    return NULL;
}

int
lb_pq_parse_error(const lb_pq_msg *msg, lb_pq_error *err)
{
    lb_pq_reader r;
    memset(err, 0, sizeof(*err));
    if (msg->type != 'E' && msg->type != 'N')
        return LB_EPROTO;
    lb_pq_reader_init(&r, msg->body, msg->len);
    for (;;) {
        uint8_t field;
        const char *value;
        if (lb_pq_get_u8(&r, &field))
            return LB_EPROTO;
        if (field == 0)
            break;
        if (lb_pq_get_str(&r, &value))
            return LB_EPROTO;
        switch (field) {
        case 'S':
            err->severity = value;
            break;
        case 'C':
            err->sqlstate = value;
            break;
        case 'M':
            err->message = value;
            break;
        case 'D':
            err->detail = value;
            break;
        default:
            break;
        }
    }
    return err->message ? 0 : LB_EPROTO;
}

/* ---- writing ------------------------------------------------------------ */

static int
put_be32(lb_buf *out, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return lb_buf_append(out, b, 4);
}

int
lb_pq_begin(lb_buf *out, char type, size_t *start)
{
    int rc = lb_buf_append(out, &type, 1);
    if (rc)
        return rc;
    *start = out->len;
    return put_be32(out, 0); /* patched by lb_pq_end */
}

void
lb_pq_end(lb_buf *out, size_t start)
{
    assert(start + 4 <= out->len);
    uint32_t len = (uint32_t)(out->len - start);
    uint8_t *p = (uint8_t *)out->data + start;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

int
lb_pq_put_u8(lb_buf *out, uint8_t v)
{
    return lb_buf_append(out, &v, 1);
}

int
lb_pq_put_i16(lb_buf *out, int16_t v)
{
    uint8_t b[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    return lb_buf_append(out, b, 2);
}

int
lb_pq_put_i32(lb_buf *out, int32_t v)
{
    return put_be32(out, (uint32_t)v);
}

int
lb_pq_put_i64(lb_buf *out, int64_t v)
{
    int rc = put_be32(out, (uint32_t)((uint64_t)v >> 32));
    return rc ? rc : put_be32(out, (uint32_t)v);
}

int
lb_pq_put_str(lb_buf *out, const char *s)
{
    return lb_buf_append(out, s, strlen(s) + 1);
}

int
lb_pq_put_bytes(lb_buf *out, const void *bytes, size_t n)
{
    return lb_buf_append(out, bytes, n);
}

/* Each builder below checks every append; -ENOMEM leaves a partial message
 * in out, which the caller must discard (the connection is failing anyway). */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

int
lb_pq_put_error(lb_buf *out, const char *severity, const char *sqlstate, const char *message,
                const char *detail)
{
    size_t start;
    TRY(lb_pq_begin(out, 'E', &start));
    TRY(lb_pq_put_u8(out, 'S'));
    TRY(lb_pq_put_str(out, severity));
    TRY(lb_pq_put_u8(out, 'V'));
    TRY(lb_pq_put_str(out, severity));
    TRY(lb_pq_put_u8(out, 'C'));
    TRY(lb_pq_put_str(out, sqlstate));
    TRY(lb_pq_put_u8(out, 'M'));
    TRY(lb_pq_put_str(out, message));
    if (detail) {
        TRY(lb_pq_put_u8(out, 'D'));
        TRY(lb_pq_put_str(out, detail));
    }
    TRY(lb_pq_put_u8(out, 0));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_auth_ok(lb_buf *out)
{
    size_t start;
    TRY(lb_pq_begin(out, 'R', &start));
    TRY(lb_pq_put_i32(out, 0));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_auth_cleartext(lb_buf *out)
{
    size_t start;
    TRY(lb_pq_begin(out, 'R', &start));
    TRY(lb_pq_put_i32(out, 3));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_password(lb_buf *out, const char *password)
{
    size_t start;
    TRY(lb_pq_begin(out, 'p', &start));
    TRY(lb_pq_put_str(out, password));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_parameter_status(lb_buf *out, const char *name, const char *value)
{
    size_t start;
    TRY(lb_pq_begin(out, 'S', &start));
    TRY(lb_pq_put_str(out, name));
    TRY(lb_pq_put_str(out, value));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_ready(lb_buf *out, char txn_status)
{
    size_t start;
    TRY(lb_pq_begin(out, 'Z', &start));
    TRY(lb_pq_put_u8(out, (uint8_t)txn_status));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_command_complete(lb_buf *out, const char *tag)
{
    size_t start;
    TRY(lb_pq_begin(out, 'C', &start));
    TRY(lb_pq_put_str(out, tag));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_row_description(lb_buf *out, int ncols, const char *const names[], const uint32_t oids[])
{
    size_t start;
    TRY(lb_pq_begin(out, 'T', &start));
    TRY(lb_pq_put_i16(out, (int16_t)ncols));
    for (int i = 0; i < ncols; i++) {
        TRY(lb_pq_put_str(out, names[i]));
        TRY(lb_pq_put_i32(out, 0));               /* table oid */
        TRY(lb_pq_put_i16(out, 0));               /* column number */
        TRY(lb_pq_put_i32(out, (int32_t)oids[i])); /* type oid */
        TRY(lb_pq_put_i16(out, -1));              /* type length: variable */
        TRY(lb_pq_put_i32(out, -1));              /* type modifier */
        TRY(lb_pq_put_i16(out, 0));               /* text format */
    }
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_data_row(lb_buf *out, int ncols, const char *const values[])
{
    size_t start;
    TRY(lb_pq_begin(out, 'D', &start));
    TRY(lb_pq_put_i16(out, (int16_t)ncols));
    for (int i = 0; i < ncols; i++) {
        if (!values[i]) {
            TRY(lb_pq_put_i32(out, -1));
            continue;
        }
        size_t n = strlen(values[i]);
        TRY(lb_pq_put_i32(out, (int32_t)n));
        TRY(lb_pq_put_bytes(out, values[i], n));
    }
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_copy_both(lb_buf *out)
{
    size_t start;
    TRY(lb_pq_begin(out, 'W', &start));
    TRY(lb_pq_put_u8(out, 0));  /* binary */
    TRY(lb_pq_put_i16(out, 0)); /* no columns */
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_startup(lb_buf *out, const char *const params[])
{
    size_t start = out->len;
    TRY(put_be32(out, 0));
    TRY(lb_pq_put_i32(out, LB_PQ_PROTOCOL_3_0));
    for (int i = 0; params[i]; i++)
        TRY(lb_pq_put_str(out, params[i]));
    TRY(lb_pq_put_u8(out, 0));
    lb_pq_end(out, start);
    return 0;
}

/* ---- replication -------------------------------------------------------- */

int
lb_pq_parse_repl(const void *bytes, size_t n, lb_pq_repl *rm)
{
    lb_pq_reader r;
    uint8_t kind, flag;
    int64_t a, b, c;
    int32_t x, y, z, w;
    memset(rm, 0, sizeof(*rm));
    lb_pq_reader_init(&r, bytes, n);
    if (lb_pq_get_u8(&r, &kind))
        return LB_EPROTO;
    rm->kind = (char)kind;
    switch (kind) {
    case 'w':
        if (lb_pq_get_i64(&r, &a) || lb_pq_get_i64(&r, &b) || lb_pq_get_i64(&r, &rm->send_time))
            return LB_EPROTO;
        rm->wal_start = (lb_lsn)a;
        rm->wal_end = (lb_lsn)b;
        rm->wal = r.p;
        rm->wal_len = r.left;
        return 0;
    case 'k':
        if (lb_pq_get_i64(&r, &a) || lb_pq_get_i64(&r, &rm->send_time) ||
            lb_pq_get_u8(&r, &flag) || r.left != 0)
            return LB_EPROTO;
        rm->wal_end = (lb_lsn)a;
        rm->reply_requested = flag != 0;
        return 0;
    case 'r':
        if (lb_pq_get_i64(&r, &a) || lb_pq_get_i64(&r, &b) || lb_pq_get_i64(&r, &c) ||
            lb_pq_get_i64(&r, &rm->send_time) || lb_pq_get_u8(&r, &flag) || r.left != 0)
            return LB_EPROTO;
        rm->write_lsn = (lb_lsn)a;
        rm->flush_lsn = (lb_lsn)b;
        rm->apply_lsn = (lb_lsn)c;
        rm->reply_requested = flag != 0;
        return 0;
    case 'h':
        if (lb_pq_get_i64(&r, &rm->send_time) || lb_pq_get_i32(&r, &x) ||
            lb_pq_get_i32(&r, &y) || lb_pq_get_i32(&r, &z) || lb_pq_get_i32(&r, &w) ||
            r.left != 0)
            return LB_EPROTO;
        rm->xmin = (uint32_t)x;
        rm->xmin_epoch = (uint32_t)y;
        rm->catalog_xmin = (uint32_t)z;
        rm->catalog_xmin_epoch = (uint32_t)w;
        return 0;
    default:
        return LB_EPROTO;
    }
}

int
lb_pq_put_xlogdata(lb_buf *out, lb_lsn start_lsn, lb_lsn end_lsn, int64_t now, const void *wal,
                   size_t n)
{
    size_t start;
    TRY(lb_pq_begin(out, 'd', &start));
    TRY(lb_pq_put_u8(out, 'w'));
    TRY(lb_pq_put_i64(out, (int64_t)start_lsn));
    TRY(lb_pq_put_i64(out, (int64_t)end_lsn));
    TRY(lb_pq_put_i64(out, now));
    TRY(lb_pq_put_bytes(out, wal, n));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_keepalive(lb_buf *out, lb_lsn wal_end, int64_t now, bool reply_requested)
{
    size_t start;
    TRY(lb_pq_begin(out, 'd', &start));
    TRY(lb_pq_put_u8(out, 'k'));
    TRY(lb_pq_put_i64(out, (int64_t)wal_end));
    TRY(lb_pq_put_i64(out, now));
    TRY(lb_pq_put_u8(out, reply_requested ? 1 : 0));
    lb_pq_end(out, start);
    return 0;
}

int
lb_pq_put_standby_status(lb_buf *out, lb_lsn write, lb_lsn flush, lb_lsn apply, int64_t now,
                         bool reply_requested)
{
    size_t start;
    TRY(lb_pq_begin(out, 'd', &start));
    TRY(lb_pq_put_u8(out, 'r'));
    TRY(lb_pq_put_i64(out, (int64_t)write));
    TRY(lb_pq_put_i64(out, (int64_t)flush));
    TRY(lb_pq_put_i64(out, (int64_t)apply));
    TRY(lb_pq_put_i64(out, now));
    TRY(lb_pq_put_u8(out, reply_requested ? 1 : 0));
    lb_pq_end(out, start);
    return 0;
}

int64_t
lb_pq_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return ((int64_t)tv.tv_sec - PG_EPOCH_OFFSET_SECS) * 1000000LL + tv.tv_usec;
}
