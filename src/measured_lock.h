/* measured_lock.h: a mutex for state the event loops share, which counts how often it was
 * taken, how often a thread found it taken and had to wait, and how long it was held (longest
 * and in total), so that "small locks" is a measured claim (event=lock_stats in the log). */
#ifndef MAILPOPBOX_MEASURED_LOCK_H
#define MAILPOPBOX_MEASURED_LOCK_H

#include <pthread.h>
#include <stdint.h>

struct measured_lock_stats {
	uint64_t acquisitions;
	uint64_t contended;     /* acquisitions that found the lock held by another thread */
	uint64_t hold_ns_total;
	uint64_t hold_ns_max;
};

struct measured_lock {
	pthread_mutex_t mutex;
	const char *name;                 /* for the log: "admission", "throttle"... */
	uint64_t taken_at_ns;             /* while held */
	struct measured_lock_stats stats; /* changed only while held */
};

void measured_lock_init(struct measured_lock *l, const char *name);
void measured_lock_destroy(struct measured_lock *l);
void measured_lock_acquire(struct measured_lock *l);
void measured_lock_release(struct measured_lock *l);
/* A consistent copy of the counters (taken under the lock). */
struct measured_lock_stats measured_lock_stats(struct measured_lock *l);
/* One line: event=lock_stats lock=NAME acquisitions= contended= hold_ns_max= hold_ns_mean= */
void measured_lock_log(struct measured_lock *l);

#endif
