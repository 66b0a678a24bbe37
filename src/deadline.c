/* deadline.c: monotonic deadlines in milliseconds and poll() against one. */
#include "deadline.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

uint64_t deadline_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t deadline_after_ms(uint64_t ms)
{
	return deadline_now_ms() + ms;
}

int deadline_left_ms(uint64_t deadline)
{
	uint64_t now = deadline_now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

int deadline_poll(int fd, short events, uint64_t deadline)
{
	for (;;) {
		int left = deadline_left_ms(deadline);
		if (left == 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}
