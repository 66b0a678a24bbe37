/* ids.c: time plus an atomic process counter, so two event loops asking in the same
 * microsecond still get different ids (ids.h). */
#include "ids.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "fsutil.h"

void ids_new(char *buf, size_t size)
{
	static atomic_uint counter;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	unsigned long long usec = (unsigned long long)now.tv_sec * 1000000ULL +
		(unsigned long long)now.tv_nsec / 1000;
	/* 40 bits of microseconds (~12 days of wrap) and 20 bits of a process counter: unique
	 * within a process, and the time part keeps restarts apart. */
	snprintf(buf, size, "%010llX%05X", usec & 0xFFFFFFFFFFULL,
		(atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) +
			(unsigned)fs_process_id()) & 0xFFFFF);
}
