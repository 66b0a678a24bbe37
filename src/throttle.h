/* throttle.h: brute-force protection for logins (SMTP AUTH, POP3 PASS/AUTH), per client IP.
 * Each failed login within AuthFailureWindowSeconds makes the next failure's reply wait one
 * second longer (up to THROTTLE_MAX_DELAY_SECONDS); after AuthMaxFailures failures the IP is
 * refused outright for AuthLockoutSeconds. A success clears the IP's record. Memory is bounded
 * (THROTTLE_MAX_ENTRIES; the stalest record is dropped first). Time is passed in. One table
 * serves every event loop: each call holds its lock for one bounded probe run (PROBE_LIMIT
 * records), never across a wait. */
#ifndef MAILPOPBOX_THROTTLE_H
#define MAILPOPBOX_THROTTLE_H

#include "bounds.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct throttle;

struct throttle *throttle_new(unsigned max_failures, unsigned window_seconds,
	unsigned lockout_seconds);
void throttle_free(struct throttle *t);

/* True while ip is locked out: refuse the login without checking it. */
bool throttle_blocked(struct throttle *t, const char *ip, time_t now);
/* Records a failed login; returns how many seconds to wait before answering it. Sets *locked
 * when this failure started a lockout. */
unsigned throttle_failure(struct throttle *t, const char *ip, time_t now, bool *locked);
void throttle_success(struct throttle *t, const char *ip);
/* The lock every call takes, for its counters (measured_lock.h). */
struct measured_lock *throttle_lock(struct throttle *t);
/* How many addresses have a record now (at most THROTTLE_MAX_ENTRIES): for tests. */
size_t throttle_entries(struct throttle *t);

#endif
