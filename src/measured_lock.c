/* measured_lock.c: a pthread mutex with contention and hold-time counters (measured_lock.h).
 * The clock is CLOCK_MONOTONIC, read through the vDSO: no system call per lock. */
#include "measured_lock.h"

#include <errno.h>
#include <stdbool.h>
#include <time.h>

#include "log.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void measured_lock_init(struct measured_lock *l, const char *name)
{
	int rc = pthread_mutex_init(&l->mutex, NULL);

	if (rc != 0)
		fatal("event=mutex_init_failed lock=%s errno=%d", name, rc);
	l->name = name;
	l->taken_at_ns = 0;
	l->stats = (struct measured_lock_stats){0};
}

void measured_lock_destroy(struct measured_lock *l)
{
	pthread_mutex_destroy(&l->mutex);
}

void measured_lock_acquire(struct measured_lock *l)
{
	bool contended = false;
	int rc = pthread_mutex_trylock(&l->mutex);

	if (rc == EBUSY) {
		contended = true;
		rc = pthread_mutex_lock(&l->mutex);
	}
	if (rc != 0)
		fatal("event=mutex_lock_failed lock=%s errno=%d", l->name, rc);
	l->stats.acquisitions++;
	if (contended)
		l->stats.contended++;
	l->taken_at_ns = now_ns();
}

void measured_lock_release(struct measured_lock *l)
{
	uint64_t held = now_ns() - l->taken_at_ns;

	l->stats.hold_ns_total += held;
	if (held > l->stats.hold_ns_max)
		l->stats.hold_ns_max = held;
	pthread_mutex_unlock(&l->mutex);
}

struct measured_lock_stats measured_lock_stats(struct measured_lock *l)
{
	struct measured_lock_stats copy;

	pthread_mutex_lock(&l->mutex);
	copy = l->stats;
	pthread_mutex_unlock(&l->mutex);
	return copy;
}

void measured_lock_log(struct measured_lock *l)
{
	struct measured_lock_stats s = measured_lock_stats(l);

	log_info("server", "event=lock_stats lock=%s acquisitions=%llu contended=%llu "
		"hold_ns_max=%llu hold_ns_mean=%llu", l->name, (unsigned long long)s.acquisitions,
		(unsigned long long)s.contended, (unsigned long long)s.hold_ns_max,
		(unsigned long long)(s.acquisitions ? s.hold_ns_total / s.acquisitions : 0));
}
