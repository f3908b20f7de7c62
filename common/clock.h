/*
 * clock.h: the two clocks, named for what they are.
 *
 *   lb_mono_ms()  CLOCK_MONOTONIC: deadlines, timeouts, intervals, timers.
 *                 Never jumps; meaningless across processes and restarts.
 *   lb_now_ms()   CLOCK_REALTIME: Unix time in milliseconds, for
 *                 timestamps that leave the process (logs, status, files).
 *                 Jumps when the system clock is set: never a deadline.
 *   lb_mono_s()   the monotonic clock in seconds with its full resolution,
 *                 for durations that go into histograms.
 *
 * A thread that waits on a condition variable with a deadline uses one
 * made by lb_cond_init_mono() and a deadline from lb_mono_deadline(), so
 * that setting the system clock neither ends the wait early nor
 * stretches it.
 *
 * RFC 3339 times (the timestamps of the APIs: Kubernetes' metadata, PITR
 * requests) are parsed here, once: lb_rfc3339_parse().
 *
 * Callers: everything that asks the time; no other file calls
 * clock_gettime() for milliseconds. The controller and the pageserver
 * parse RFC 3339.
 */
#ifndef LB_CLOCK_H
#define LB_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t lb_mono_ms(void);
int64_t lb_now_ms(void);
double lb_mono_s(void);

/* Sleep ms milliseconds. A caught signal ends it early (callers that
 * poll a stop flag see it at once); other wake-ups do not. */
void lb_sleep_ms(int64_t ms);

/* pthread_cond_init() whose timed waits measure CLOCK_MONOTONIC. 0 or an
 * error number. */
int lb_cond_init_mono(pthread_cond_t *cond);
/* The CLOCK_MONOTONIC time after_ms from now, for pthread_cond_timedwait()
 * on a condition made by lb_cond_init_mono(). */
struct timespec lb_mono_deadline(int64_t after_ms);

/* Parse an RFC 3339 time, "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"
 * ('T' and 'Z' in either case; every field its exact number of digits;
 * the day must exist in its month; second 60, a leap second, counts as
 * the next second; digits of frac past the sixth are dropped), into
 * microseconds since the Unix epoch. Years 1970 to 9999. 0, or LB_EPARSE
 * for anything else, NULL included. */
int lb_rfc3339_parse(const char *text, int64_t *us);

#endif
