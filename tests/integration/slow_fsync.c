/* slow_fsync.c: an LD_PRELOAD shim for tests that behaves like a slow or failing disk.
 *
 * Slow or failing file syncs (the original use):
 *   SLOW_FSYNC_MS=N   fsync() and fdatasync() of regular files sleep N ms before the real work,
 *                     and so does a write that syncs (pwritev2 with RWF_SYNC or RWF_DSYNC)
 *   FAIL_FSYNC=1      ... and then fail with EIO, as the kernel reports a write-back error
 *
 * One chosen step of a transaction fails (so a test can fail each step in turn):
 *   FAULT_OP=fsync|dirfsync|rename|create
 *                                    fsync of a regular file (or a write that syncs, which
 *                                    then writes nothing), fsync of a directory,
 *                                    rename(2) (matched on the new name), or an open(2) that
 *                                    creates a file (O_CREAT)
 *   FAULT_PATH=PATTERN               fnmatch(3) pattern for the path ('*' matches '/' too)
 *   FAULT_NTH=N                      the Nth matching call fails (default 1) ...
 *   FAULT_COUNT=K                    ... and the K-1 after it (default 1; 0: all from N on)
 *   FAULT_ERRNO=EIO|ENOSPC|EDQUOT    the error (default EIO)
 * Every injected failure writes "fault_injected op=... path=..." to stderr (the server's log),
 * so a test can tell the step it meant to fail was reached. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static atomic_long matching_calls;

static int fault_errno(void)
{
	const char *name = getenv("FAULT_ERRNO");

	if (name && strcmp(name, "ENOSPC") == 0)
		return ENOSPC;
	if (name && strcmp(name, "EDQUOT") == 0)
		return EDQUOT;
	return EIO;
}

/* Whether this call (op on path) is one that must fail; sets errno when it is. */
static int fault_hits(const char *op, const char *path)
{
	const char *want_op = getenv("FAULT_OP");
	const char *pattern = getenv("FAULT_PATH");
	const char *nth_text = getenv("FAULT_NTH");
	const char *count_text = getenv("FAULT_COUNT");
	long nth = nth_text ? strtol(nth_text, NULL, 10) : 1;
	long count = count_text ? strtol(count_text, NULL, 10) : 1;
	char line[4200];
	int len;

	if (!want_op || strcmp(want_op, op) != 0 || !pattern || fnmatch(pattern, path, 0) != 0)
		return 0;
	long call = atomic_fetch_add(&matching_calls, 1) + 1;
	if (call < nth || (count > 0 && call >= nth + count))
		return 0;
	len = snprintf(line, sizeof(line), "fault_injected op=%s path=%s call=%ld\n", op, path,
		call);
	if (len > 0)
		(void)!write(2, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
	errno = fault_errno();
	return 1;
}

/* The path an open descriptor names, or "" when it cannot be told. */
static void descriptor_path(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, size - 1);
	out[n > 0 ? n : 0] = '\0';
}

/* Returns -1 (errno set) when the sync must fail, else 0 after any delay. */
static int slow_down(int fd)
{
	struct stat st;
	const char *ms = getenv("SLOW_FSYNC_MS");
	const char *fail = getenv("FAIL_FSYNC");
	char path[4096];

	if (fstat(fd, &st) != 0)
		return 0;
	if (getenv("FAULT_OP") && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		descriptor_path(fd, path, sizeof(path));
		if (fault_hits(S_ISDIR(st.st_mode) ? "dirfsync" : "fsync", path))
			return -1;
	}
	if (!S_ISREG(st.st_mode))
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

int rename(const char *from, const char *to)
{
	int (*real_rename)(const char *, const char *) =
		(int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");

	if (getenv("FAULT_OP") && fault_hits("rename", to))
		return -1;
	return real_rename(from, to);
}

/* The server is built with large-file support: its open(2) calls are open64. Only a call that
 * creates a file can be failed (a full disk, a quota), matched on the path as given. */
int open64(const char *path, int flags, ...)
{
	int (*real_open64)(const char *, int, ...) =
		(int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
	mode_t mode = 0;

	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if ((flags & O_CREAT) && getenv("FAULT_OP") && fault_hits("create", path))
		return -1;
	return real_open64(path, flags, mode);
}

/* A write with RWF_SYNC or RWF_DSYNC is a file's write and fsync in one call (the maildrop
 * writes a small message that way): it is slowed or failed as that file's fsync. glibc has two
 * names for it; the server's large-file build calls pwritev64v2. */
typedef ssize_t (*pwritev2_fn)(int, const struct iovec *, int, off_t, int);

static ssize_t synced_write(const char *name, int fd, const struct iovec *iov, int count,
	off_t offset, int flags)
{
	pwritev2_fn real = (pwritev2_fn)dlsym(RTLD_NEXT, name);

	if ((flags & (RWF_SYNC | RWF_DSYNC)) && slow_down(fd) != 0)
		return -1;
	return real(fd, iov, count, offset, flags);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int count, off_t offset, int flags)
{
	return synced_write("pwritev2", fd, iov, count, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int count, off_t offset, int flags)
{
	return synced_write("pwritev64v2", fd, iov, count, offset, flags);
}
