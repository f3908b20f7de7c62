/*
 * log.h: one line per event.
 *
 * A line is "<UTC time> <level> <component>: <message> key=value ...". The
 * caller writes the key=value context into the message itself:
 *
 *     lb_info("segment offloaded timeline=%s lsn=" LB_LSN_FMT, tl, LB_LSN_ARGS(lsn));
 *
 * A line is written with a single write(2), so lines from threads and
 * processes sharing a file never interleave. Newlines in the message are
 * escaped, so one event is always one line. Never log secrets.
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdarg.h>

typedef enum lb_log_level {
    LB_LOG_ERROR = 0,
    LB_LOG_WARN = 1,
    LB_LOG_INFO = 2,
    LB_LOG_DEBUG = 3,
} lb_log_level;

/* Daemons: set the component name (copied) and threshold once at start. */
void lb_log_init(const char *component, lb_log_level level);
void lb_log_set_level(lb_log_level level);
lb_log_level lb_log_get_level(void);
/* Send lines to fd (default 2). Tests use this to capture output. */
void lb_log_set_fd(int fd);

/* "error", "warn", "info", "debug" -> level. Returns 0 or LB_EPARSE. */
int lb_log_level_parse(const char *name, lb_log_level *level);
const char *lb_log_level_name(lb_log_level level);

void lb_log(lb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lb_logv(lb_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define lb_error(...) lb_log(LB_LOG_ERROR, __VA_ARGS__)
#define lb_warn(...) lb_log(LB_LOG_WARN, __VA_ARGS__)
#define lb_info(...) lb_log(LB_LOG_INFO, __VA_ARGS__)
#define lb_debug(...) lb_log(LB_LOG_DEBUG, __VA_ARGS__)

#endif
