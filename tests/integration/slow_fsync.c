/* slow_fsync.c: an LD_PRELOAD shim for tests that behaves like a slow or failing disk:
 * fsync() and fdatasync() of regular files sleep SLOW_FSYNC_MS milliseconds before doing the
 * real work, and with FAIL_FSYNC=1 they fail with EIO, as the kernel reports a write-back
 * error. Directory fsyncs are left alone, so only the message file's sync is affected. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

/* Returns -1 (errno EIO) when the sync must fail, else 0 after any delay. */
static int slow_down(int fd)
{
	struct stat st;
	const char *ms = getenv("SLOW_FSYNC_MS");
	const char *fail = getenv("FAIL_FSYNC");

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (ms) {
		long value = strtol(ms, NULL, 10);
		struct timespec delay = {value / 1000, (value % 1000) * 1000000L};
		nanosleep(&delay, NULL);
	}
	if (fail && fail[0] == '1') {
		errno = EIO;
		return -1;
	}
	return 0;
}

int fsync(int fd)
{
	int (*real_fsync)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	if (slow_down(fd) != 0)
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	int (*real_fdatasync)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	if (slow_down(fd) != 0)
		return -1;
	return real_fdatasync(fd);
}
