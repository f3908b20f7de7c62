/*
 * clock.h: the two clocks, named for what they are.
 *
 *   lb_mono_ms()  CLOCK_MONOTONIC: deadlines, timeouts, intervals, timers.
 *                 Never jumps; meaningless across processes and restarts.
 *   lb_now_ms()   CLOCK_REALTIME: Unix time in milliseconds, for
 *                 timestamps that leave the process (logs, status, files).
 *                 Jumps when the system clock is set: never a deadline.
 *
 * Callers: everything that asks the time; no other file calls
 * clock_gettime() for milliseconds.
 */
#ifndef LB_CLOCK_H
#define LB_CLOCK_H

#include <stdint.h>

int64_t lb_mono_ms(void);
int64_t lb_now_ms(void);

#endif
