/*
 * clock: the process's one source of "now" and "later": a monotonic clock
 * for latencies and bounds, deadlines for condition-variable waits, and a
 * plain sleep.
 */
#ifndef TICKETD_CLOCK_H
#define TICKETD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic microseconds (not wall time: for durations only). */
int64_t clock_now_us(void);

/*
 * The CLOCK_REALTIME instant ms milliseconds from now, for
 * pthread_cond_timedwait (whose default clock that is).
 */
void clock_deadline_in(struct timespec *ts, int ms);

/* Sleep ms milliseconds (a signal may cut it short). */
void clock_sleep_ms(int ms);

#endif
