/* deadline.h: monotonic deadlines in milliseconds for the blocking I/O made on worker threads
 * (the push transports, the milter, the sender checks' DNS). A deadline is a CLOCK_MONOTONIC
 * time in milliseconds; a wait takes what is left of it, so a peer that stalls costs at most
 * the deadline however its bytes trickle in. */
#ifndef MAILPOPBOX_DEADLINE_H
#define MAILPOPBOX_DEADLINE_H

#include <stdint.h>

uint64_t deadline_now_ms(void);
/* The deadline ms milliseconds from now. */
uint64_t deadline_after_ms(uint64_t ms);
/* Milliseconds left before deadline: 0 once it has passed, at most INT_MAX (poll's limit). */
int deadline_left_ms(uint64_t deadline);
/* Waits until fd has one of events (poll(2)) or deadline passes, a signal retried: 1 when
 * ready, 0 when the deadline passed, -1 when poll failed (errno set). */
int deadline_poll(int fd, short events, uint64_t deadline);

#endif
