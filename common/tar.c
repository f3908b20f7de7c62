/*
 * tar.c: the streaming tar writer and reader of tar.h.
 *
 * Header layout (POSIX ustar, 512 bytes): name[100] mode[8] uid[8] gid[8]
 * size[12] mtime[12] chksum[8] typeflag linkname[100] magic[6] version[2]
 * uname[32] gname[32] devmajor[8] devminor[8] prefix[155]. Numbers are
 * octal text; the checksum is the byte sum of the header with the checksum
 * field read as spaces.
 *
 * The reader is a small state machine (header, extension data, file data,
 * padding) so it can be fed any chunking of the archive; it buffers at most
 * one header block plus a bounded extension record.
 */
#include "tar.h"
#include "errors.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF_NAME 0
#define OFF_MODE 100
#define OFF_UID 108
#define OFF_GID 116
#define OFF_SIZE 124
#define OFF_MTIME 136
#define OFF_CHKSUM 148
#define OFF_TYPE 156
#define OFF_LINK 157
#define OFF_MAGIC 257
#define OFF_VERSION 263
#define OFF_UNAME 265
#define OFF_GNAME 297
#define OFF_PREFIX 345

#define EXT_MAX (1u << 20) /* largest pax / GNU long-name record accepted */

static const uint8_t zero_block[LB_TAR_BLOCK];

/* ---- shared -------------------------------------------------------------- */

bool
lb_tar_name_is_safe(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return false;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (n == 0 && slash && slash[1] != '\0')
            return false; /* "a//b" */
        if (!slash)
            break;
        p = slash + 1;
    }
    return true;
}

static uint32_t
header_checksum(const uint8_t *h)
{
    uint32_t sum = 0;
    for (int i = 0; i < LB_TAR_BLOCK; i++)
        sum += (i >= OFF_CHKSUM && i < OFF_CHKSUM + 8) ? ' ' : h[i];
    return sum;
}

/* ---- writer -------------------------------------------------------------- */

void
lb_tar_writer_init(lb_tar_writer *w, lb_tar_sink sink, void *arg)
{
    memset(w, 0, sizeof(*w));
    w->sink = sink;
    w->arg = arg;
}

static int
emit(lb_tar_writer *w, const void *bytes, size_t n)
{
    int rc = w->sink(w->arg, bytes, n);
    if (rc == 0)
        w->offset += n;
    return rc;
}

static void
put_octal(uint8_t *field, size_t width, uint64_t v)
{
    /* width-1 digits, zero-padded, then NUL */
    for (size_t i = width - 1; i-- > 0;) {
        field[i] = (uint8_t)('0' + (v & 7));
        v >>= 3;
    }
    field[width - 1] = '\0';
}

static void
put_size(uint8_t *field, uint64_t size)
{
    if (size < (1ULL << 33)) {
        put_octal(field, 12, size);
        return;
    }
    /* base-256: high bit set, the value big-endian in the remaining bytes */
    memset(field, 0, 12);
    field[0] = 0x80;
    for (int i = 11; i >= 4; i--) {
        field[i] = (uint8_t)size;
        size >>= 8;
    }
}

/* Split name into ustar prefix and name. false if it cannot be done. */
static bool
split_name(const char *name, uint8_t *h)
{
    size_t n = strlen(name);
    if (n <= 100) {
        memcpy(h + OFF_NAME, name, n);
        return true;
    }
    for (size_t i = n - 1; i > 0; i--) {
        if (name[i] != '/')
            continue;
        if (i <= 155 && n - i - 1 <= 100 && n - i - 1 > 0) {
            memcpy(h + OFF_PREFIX, name, i);
            memcpy(h + OFF_NAME, name + i + 1, n - i - 1);
            return true;
        }
        if (i < n - 101)
            break; /* the name part would only get longer */
    }
    return false;
}

static int
write_header(lb_tar_writer *w, const char *name, char type, uint64_t size, mode_t mode,
             int64_t mtime, const char *linkname)
{
    uint8_t h[LB_TAR_BLOCK];
    memset(h, 0, sizeof(h));
    if (!split_name(name, h)) {
        /* A pax record "<len> path=<name>\n" carries the full name. */
        char rec[8192];
        size_t body = strlen(name) + strlen(" path=\n");
        size_t len = body + 1;
        while ((size_t)snprintf(NULL, 0, "%zu", len) + body != len)
            len++;
        if (len >= sizeof(rec))
            return LB_ETOOBIG;
        snprintf(rec, sizeof(rec), "%zu path=%s\n", len, name);
        int rc = write_header(w, "././@PaxHeader", 'x', len, 0644, mtime, NULL);
        if (rc == 0)
            rc = emit(w, rec, len);
        if (rc == 0 && len % LB_TAR_BLOCK)
            rc = emit(w, zero_block, LB_TAR_BLOCK - len % LB_TAR_BLOCK);
        if (rc)
            return rc;
        memset(h, 0, sizeof(h));
        memcpy(h + OFF_NAME, name, 100); /* truncated; readers use the pax path */
    }
    if (linkname) {
        size_t ln = strlen(linkname);
        if (ln > 100)
            return LB_ETOOBIG;
        memcpy(h + OFF_LINK, linkname, ln);
    }
    put_octal(h + OFF_MODE, 8, mode & 07777);
    put_octal(h + OFF_UID, 8, 0);
    put_octal(h + OFF_GID, 8, 0);
    put_size(h + OFF_SIZE, size);
    put_octal(h + OFF_MTIME, 12, mtime > 0 ? (uint64_t)mtime : 0);
    h[OFF_TYPE] = (uint8_t)type;
    memcpy(h + OFF_MAGIC, "ustar", 6);
    memcpy(h + OFF_VERSION, "00", 2);
    memcpy(h + OFF_UNAME, "postgres", 8);
    memcpy(h + OFF_GNAME, "postgres", 8);
    put_octal(h + OFF_CHKSUM, 7, header_checksum(h));
    h[OFF_CHKSUM + 7] = ' ';
    return emit(w, h, sizeof(h));
}

int
lb_tar_begin_file(lb_tar_writer *w, const char *name, uint64_t size, mode_t mode, int64_t mtime)
{
    if (w->remaining || w->pad)
        return LB_EPROTO;
    if (!lb_tar_name_is_safe(name))
        return LB_EPARSE;
    int rc = write_header(w, name, '0', size, mode, mtime, NULL);
    if (rc)
        return rc;
    w->remaining = size;
    w->pad = (LB_TAR_BLOCK - size % LB_TAR_BLOCK) % LB_TAR_BLOCK;
    return 0;
}

int
lb_tar_write(lb_tar_writer *w, const void *bytes, size_t n)
{
    if (n > w->remaining)
        return LB_EPROTO;
    int rc = emit(w, bytes, n);
    if (rc)
        return rc;
    w->remaining -= n;
    if (w->remaining == 0 && w->pad) {
        rc = emit(w, zero_block, (size_t)w->pad);
        w->pad = 0;
    }
    return rc;
}

int
lb_tar_add_file(lb_tar_writer *w, const char *name, const void *bytes, size_t n, mode_t mode,
                int64_t mtime)
{
    int rc = lb_tar_begin_file(w, name, n, mode, mtime);
    if (rc == 0 && n)
        rc = lb_tar_write(w, bytes, n);
    return rc;
}

int
lb_tar_add_dir(lb_tar_writer *w, const char *name, mode_t mode, int64_t mtime)
{
    if (w->remaining || w->pad)
        return LB_EPROTO;
    if (!lb_tar_name_is_safe(name))
        return LB_EPARSE;
    return write_header(w, name, '5', 0, mode, mtime, NULL);
}

int
lb_tar_add_symlink(lb_tar_writer *w, const char *name, const char *target, int64_t mtime)
{
    if (w->remaining || w->pad)
        return LB_EPROTO;
    if (!lb_tar_name_is_safe(name))
        return LB_EPARSE;
    return write_header(w, name, '2', 0, 0777, mtime, target);
}

int
lb_tar_finish(lb_tar_writer *w)
{
    if (w->remaining || w->pad)
        return LB_EPROTO;
    int rc = emit(w, zero_block, LB_TAR_BLOCK);
    return rc ? rc : emit(w, zero_block, LB_TAR_BLOCK);
}

/* ---- reader -------------------------------------------------------------- */

typedef enum rstate {
    R_HEADER,
    R_EXT,  /* data of a pax 'x'/'g' or GNU 'L'/'K' record */
    R_DATA, /* file data */
    R_PAD,
    R_DONE,
    R_DEAD,
} rstate;

struct lb_tar_reader {
    const lb_tar_reader_ops *ops;
    void *arg;
    rstate state;
    uint8_t hdr[LB_TAR_BLOCK];
    size_t hdr_len;
    int zero_blocks;
    /* current extension record */
    char ext_type;
    char *ext;
    size_t ext_len, ext_size;
    /* overrides for the next entry, from pax or GNU records */
    char *next_name, *next_link;
    /* current entry */
    lb_tar_entry entry;
    char name[512];
    char link[512];
    char *long_name, *long_link; /* owned copies when longer than the arrays */
    uint64_t remaining, pad;
};

int
lb_tar_reader_new(const lb_tar_reader_ops *ops, void *arg, lb_tar_reader **out)
{
    lb_tar_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->ops = ops;
    r->arg = arg;
    *out = r;
    return 0;
}

void
lb_tar_reader_free(lb_tar_reader *r)
{
    if (!r)
        return;
    free(r->ext);
    free(r->next_name);
    free(r->next_link);
    free(r->long_name);
    free(r->long_link);
    free(r);
}

bool
lb_tar_reader_done(const lb_tar_reader *r)
{
    return r->state == R_DONE;
}

static int
parse_number(const uint8_t *field, size_t width, uint64_t *out)
{
    if (field[0] & 0x80) { /* base-256 */
        uint64_t v = field[0] & 0x7F;
        for (size_t i = 1; i < width; i++) {
            if (v >> 55)
                return LB_EPARSE;
            v = (v << 8) | field[i];
        }
        *out = v;
        return 0;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < width && field[i] == ' ')
        i++;
    bool any = false;
    for (; i < width && field[i] >= '0' && field[i] <= '7'; i++) {
        if (v >> 60)
            return LB_EPARSE;
        v = (v << 3) | (uint64_t)(field[i] - '0');
        any = true;
    }
    for (; i < width; i++)
        if (field[i] != ' ' && field[i] != '\0')
            return LB_EPARSE;
    *out = any ? v : 0;
    return 0;
}

/* Parse "<len> key=value\n" records; keep path and linkpath. <len> is
 * decimal digits and nothing else (no white space or sign, which strtoul
 * would skip), and the record it announces holds them, the space, a key,
 * '=' and the newline: every pointer below stays inside the record. */
static int
apply_pax(lb_tar_reader *r)
{
    size_t off = 0;
    while (off < r->ext_len) {
        const char *rec = r->ext + off;
        size_t left = r->ext_len - off, digits = 0, len = 0;
        while (digits < left && digits < 10 && rec[digits] >= '0' && rec[digits] <= '9')
            len = len * 10 + (size_t)(rec[digits++] - '0');
        if (digits == 0 || digits == left || rec[digits] != ' ' || len < digits + 4 || len > left ||
            rec[len - 1] != '\n')
            return LB_EPARSE;
        char *end = r->ext + off + digits;
        char *kv = end + 1;
        assert(kv < r->ext + off + len - 1);
        char *eq = memchr(kv, '=', (size_t)(r->ext + off + len - 1 - kv));
        if (!eq)
            return LB_EPARSE;
        size_t vlen = (size_t)(r->ext + off + len - 1 - (eq + 1));
        char **dst = NULL;
        if ((size_t)(eq - kv) == 4 && memcmp(kv, "path", 4) == 0)
            dst = &r->next_name;
        else if ((size_t)(eq - kv) == 8 && memcmp(kv, "linkpath", 8) == 0)
            dst = &r->next_link;
        if (dst) {
            free(*dst);
            *dst = strndup(eq + 1, vlen);
            if (!*dst)
                return -ENOMEM;
        }
        off += len;
    }
    return 0;
}

static int
finish_ext(lb_tar_reader *r)
{
    int rc = 0;
    switch (r->ext_type) {
    case 'x':
        rc = apply_pax(r);
        break;
    case 'L':
    case 'K': {
        char **dst = r->ext_type == 'L' ? &r->next_name : &r->next_link;
        free(*dst);
        *dst = strndup(r->ext, r->ext_len); /* stops at the NUL GNU tar appends */
        rc = *dst ? 0 : -ENOMEM;
        break;
    }
    default: /* 'g': global pax header, nothing we use */
        break;
    }
    free(r->ext);
    r->ext = NULL;
    r->ext_len = r->ext_size = 0;
    return rc;
}

/* Take ownership of value: copy it into arr if it fits, else keep it in *heap. */
static void
set_string(char *arr, size_t cap, char **heap, char *value)
{
    free(*heap);
    *heap = NULL;
    if (strlen(value) < cap) {
        strcpy(arr, value);
        free(value);
    } else {
        *heap = value;
    }
}

static int
start_entry(lb_tar_reader *r)
{
    const uint8_t *h = r->hdr;
    uint64_t stored, size, mode, mtime;
    if (parse_number(h + OFF_CHKSUM, 8, &stored) || stored != header_checksum(h)) {
        lb_warn("tar header checksum mismatch");
        return LB_EPARSE;
    }
    if (parse_number(h + OFF_SIZE, 12, &size) || parse_number(h + OFF_MODE, 8, &mode) ||
        parse_number(h + OFF_MTIME, 12, &mtime))
        return LB_EPARSE;
    char type = (char)h[OFF_TYPE];

    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
        if (size > EXT_MAX)
            return LB_ETOOBIG;
        r->ext_type = type;
        r->ext_size = (size_t)size;
        r->ext_len = 0;
        r->ext = malloc(r->ext_size + 1);
        if (!r->ext)
            return -ENOMEM;
        r->remaining = size;
        r->pad = (LB_TAR_BLOCK - size % LB_TAR_BLOCK) % LB_TAR_BLOCK;
        r->state = R_EXT;
        return 0;
    }

    lb_tar_entry *e = &r->entry;
    memset(e, 0, sizeof(*e));
    switch (type) {
    case '0':
    case '\0':
    case '7':
        e->type = LB_TAR_FILE;
        break;
    case '5':
        e->type = LB_TAR_DIR;
        break;
    case '2':
        e->type = LB_TAR_SYMLINK;
        break;
    default:
        lb_warn("unsupported tar entry type '%c'", type);
        return LB_EPARSE;
    }

    /* Name: pax/GNU override, else prefix "/" name. */
    if (r->next_name) {
        set_string(r->name, sizeof(r->name), &r->long_name, r->next_name);
        r->next_name = NULL;
    } else {
        free(r->long_name);
        r->long_name = NULL;
        size_t pn = strnlen((const char *)h + OFF_PREFIX, 155);
        size_t nn = strnlen((const char *)h + OFF_NAME, 100);
        bool ustar = memcmp(h + OFF_MAGIC, "ustar", 5) == 0;
        if (!ustar || memcmp(h + OFF_MAGIC, "ustar  ", 8) == 0)
            pn = 0; /* old GNU headers use that area for other fields */
        size_t k = 0;
        if (pn) {
            memcpy(r->name, h + OFF_PREFIX, pn);
            r->name[pn] = '/';
            k = pn + 1;
        }
        memcpy(r->name + k, h + OFF_NAME, nn);
        r->name[k + nn] = '\0';
    }
    if (r->next_link) {
        set_string(r->link, sizeof(r->link), &r->long_link, r->next_link);
        r->next_link = NULL;
    } else {
        free(r->long_link);
        r->long_link = NULL;
        size_t ln = strnlen((const char *)h + OFF_LINK, 100);
        memcpy(r->link, h + OFF_LINK, ln);
        r->link[ln] = '\0';
    }
    e->name = r->long_name ? r->long_name : r->name;
    e->linkname = r->long_link ? r->long_link : r->link;
    /* Directory entries conventionally end in '/'. */
    char *nm = (char *)e->name;
    size_t nlen = strlen(nm);
    if (nlen > 1 && nm[nlen - 1] == '/')
        nm[nlen - 1] = '\0';
    if (!lb_tar_name_is_safe(e->name)) {
        lb_warn("unsafe name in tar archive name=\"%s\"", e->name);
        return LB_EPARSE;
    }
    if (e->type != LB_TAR_FILE)
        size = 0; /* links and directories carry no data */
    e->size = size;
    e->mode = (mode_t)(mode & 07777);
    e->mtime = (int64_t)mtime;

    int rc = r->ops->on_entry ? r->ops->on_entry(r->arg, e) : 0;
    if (rc)
        return rc;
    r->remaining = size;
    r->pad = (LB_TAR_BLOCK - size % LB_TAR_BLOCK) % LB_TAR_BLOCK;
    if (size > 0) {
        r->state = R_DATA;
    } else {
        if (e->type == LB_TAR_FILE && r->ops->on_end && (rc = r->ops->on_end(r->arg, e)))
            return rc;
        r->state = R_HEADER;
    }
    return 0;
}

int
lb_tar_reader_feed(lb_tar_reader *r, const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    int rc = 0;
    if (r->state == R_DEAD)
        return LB_EPARSE;
    while (n > 0 && rc == 0) {
        switch (r->state) {
        case R_HEADER: {
            size_t take = LB_TAR_BLOCK - r->hdr_len;
            if (take > n)
                take = n;
            memcpy(r->hdr + r->hdr_len, p, take);
            r->hdr_len += take;
            p += take;
            n -= take;
            if (r->hdr_len < LB_TAR_BLOCK)
                break;
            r->hdr_len = 0;
            if (memcmp(r->hdr, zero_block, LB_TAR_BLOCK) == 0) {
                if (++r->zero_blocks == 2)
                    r->state = R_DONE;
                break;
            }
            if (r->zero_blocks) {
                rc = LB_EPARSE; /* a lone zero block inside the archive */
                break;
            }
            rc = start_entry(r);
            break;
        }
        case R_EXT:
        case R_DATA: {
            size_t take = r->remaining < n ? (size_t)r->remaining : n;
            if (r->state == R_EXT) {
                memcpy(r->ext + r->ext_len, p, take);
                r->ext_len += take;
            } else if (r->ops->on_data) {
                rc = r->ops->on_data(r->arg, &r->entry, p, take);
            }
            p += take;
            n -= take;
            r->remaining -= take;
            if (rc || r->remaining)
                break;
            if (r->state == R_EXT) {
                r->ext[r->ext_len] = '\0';
                rc = finish_ext(r);
            } else if (r->ops->on_end) {
                rc = r->ops->on_end(r->arg, &r->entry);
            }
            r->state = r->pad ? R_PAD : R_HEADER;
            break;
        }
        case R_PAD: {
            size_t take = r->pad < n ? (size_t)r->pad : n;
            p += take;
            n -= take;
            r->pad -= take;
            if (r->pad == 0)
                r->state = R_HEADER;
            break;
        }
        case R_DONE:
            /* Trailing zero blocks (tar pads to a record size) are fine. */
            for (size_t i = 0; i < n; i++)
                if (p[i]) {
                    rc = LB_EPARSE;
                    break;
                }
            n = 0;
            break;
        case R_DEAD:
            rc = LB_EPARSE;
            break;
        }
    }
    if (rc)
        r->state = R_DEAD;
    return rc;
}
