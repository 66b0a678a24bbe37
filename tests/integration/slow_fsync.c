/* slow_fsync.c: an LD_PRELOAD shim for tests that behaves like a slow disk: fsync() and
 * fdatasync() of regular files sleep SLOW_FSYNC_MS milliseconds before doing the real work.
 * Directory fsyncs are left fast, so only the message file's sync is slow. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static void slow_down(int fd)
{
	struct stat st;
	const char *ms = getenv("SLOW_FSYNC_MS");

	if (!ms || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	long value = strtol(ms, NULL, 10);
	struct timespec delay = {value / 1000, (value % 1000) * 1000000L};
	nanosleep(&delay, NULL);
}

int fsync(int fd)
{
	int (*real_fsync)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	slow_down(fd);
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	int (*real_fdatasync)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	slow_down(fd);
	return real_fdatasync(fd);
}
