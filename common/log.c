/*
 * log.c: the line logger of log.h.
 *
 * Formatting happens into a stack buffer and the line goes out with one
 * write(2); a line longer than the buffer is cut and ends with "...". The
 * level check is a relaxed atomic load, so a disabled debug line costs one
 * comparison.
 */
#include "log.h"
#include "errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char log_component[32] = "lakebase";
static atomic_int log_level = LB_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
lb_log_init(const char *component, lb_log_level level)
{
    snprintf(log_component, sizeof(log_component), "%s", component);
    atomic_store(&log_level, level);
}

void
lb_log_set_level(lb_log_level level)
{
    atomic_store(&log_level, level);
}

lb_log_level
lb_log_get_level(void)
{
    return (lb_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
lb_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

int
lb_log_level_parse(const char *name, lb_log_level *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (lb_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *level = LB_LOG_WARN;
        return 0;
    }
    return LB_EPARSE;
}

const char *
lb_log_level_name(lb_log_level level)
{
    if ((int)level < 0 || (int)level > LB_LOG_DEBUG)
        return "unknown";
    return level_names[level];
}

void
lb_logv(lb_log_level level, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;

    int saved_errno = errno;
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 128];
    struct timeval tv;
    struct tm tm;

    int msg_len = vsnprintf(msg, sizeof(msg), fmt, ap);
    bool cut = msg_len >= (int)sizeof(msg);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);

    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), lb_log_level_name(level), log_component);
    size_t pos = (size_t)n;
    /* Copy the message, escaping line breaks so one event stays one line. */
    for (const char *p = msg; *p; p++) {
        if (pos >= sizeof(line) - 5) {
            cut = true;
            break;
        }
        if (*p == '\n') {
            line[pos++] = '\\';
            line[pos++] = 'n';
        } else if (*p == '\r') {
            line[pos++] = '\\';
            line[pos++] = 'r';
        } else {
            line[pos++] = *p;
        }
    }
    if (cut) { /* pos <= sizeof(line) - 4 here: room for "...\n" */
        memcpy(line + pos, "...", 3);
        pos += 3;
    }
    line[pos++] = '\n';

    int fd = atomic_load(&log_fd);
    const char *out = line;
    while (pos > 0) {
        ssize_t w = write(fd, out, pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        out += w;
        pos -= (size_t)w;
    }
    errno = saved_errno;
}

void
lb_log(lb_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lb_logv(level, fmt, ap);
    va_end(ap);
}
