/*
 * buf.h: a growable byte buffer.
 *
 * lb_buf owns data; lb_buf_free() releases it. data is always NUL-terminated
 * past len (when non-NULL), so a buffer holding text can be used as a C
 * string. A zeroed lb_buf (LB_BUF_INIT) is a valid empty buffer.
 */
#ifndef LB_BUF_H
#define LB_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct lb_buf {
    char *data;
    size_t len;
    size_t cap;
} lb_buf;

#define LB_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* All return 0 or -ENOMEM; on failure the buffer is unchanged. */
int lb_buf_reserve(lb_buf *b, size_t extra);
int lb_buf_append(lb_buf *b, const void *bytes, size_t n);
int lb_buf_append_str(lb_buf *b, const char *s);
int lb_buf_printf(lb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int lb_buf_vprintf(lb_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n <= len). */
void lb_buf_consume(lb_buf *b, size_t n);
void lb_buf_reset(lb_buf *b);
void lb_buf_free(lb_buf *b);
/* Hand the bytes to the caller (who frees them); the buffer becomes empty. */
char *lb_buf_steal(lb_buf *b, size_t *len);

#endif
