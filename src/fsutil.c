/* fsutil.c: fsync'd directory creation, the durable-file writer, and the small helpers durable
 * writes share. */
#include "fsutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

long fs_process_id(void)
{
	static atomic_long pid; /* the process never forks after start */
	long p = atomic_load_explicit(&pid, memory_order_relaxed);

	if (p == 0) {
		p = (long)getpid();
		atomic_store_explicit(&pid, p, memory_order_relaxed);
	}
	return p;
}

char *fs_path_printf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("event=path_format_failed");
	p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int fs_fsync_directory(const char *path)
{
	int fd, saved;

	do
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

char *fs_parent_directory(const char *path)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	while (len > 0 && path[len - 1] != '/')
		len--;
	if (len == 0)
		return xstrdup(".");
	while (len > 1 && path[len - 1] == '/')
		len--;
	return xstrndup(path, len);
}

int fs_make_directories(const char *path)
{
	struct stat st;
	char *parent;
	int r;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		errno = ENOTDIR;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	parent = fs_parent_directory(path);
	r = strcmp(parent, path) == 0 ? 0 : fs_make_directories(parent);
	if (r == 0 && mkdir(path, 0700) < 0 && errno != EEXIST)
		r = -1;
	if (r == 0)
		r = fs_fsync_directory(parent);
	free(parent);
	return r;
}

int fs_sync_and_close(int *fd)
{
	int synced = fsync(*fd), saved = errno;
	int closed = close(*fd);

	*fd = -1;
	if (synced < 0) {
		errno = saved;
		return -1;
	}
	return closed < 0 && errno != EINTR ? -1 : 0;
}

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_durable_create(struct fs_durable_file *f, const char *path)
{
	int fd;

	f->fd = -1;
	f->path = NULL;
	f->synced = false;
	do
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	f->fd = fd;
	f->path = xstrdup(path);
	return 0;
}

int fs_durable_sync(struct fs_durable_file *f, int write_error)
{
	if (f->synced)
		return 0;
	if (f->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (write_error) {
		fs_durable_discard(f, "fsutil");
		errno = write_error;
		return -1;
	}
	f->synced = true; /* closed from here on: discard unlinks it by name */
	if (fs_sync_and_close(&f->fd) < 0) {
		fs_durable_discard(f, "fsutil");
		return -1;
	}
	return 0;
}

/* data written whole, each call with RWF_SYNC: every call's octets are on disk when it
 * returns, so after the last one all of them are. Returns 0, 1 when the kernel does not know
 * the flag (nothing written then), or -1 with errno. */
static int write_all_synced(int fd, const void *data, size_t len)
{
	const char *p = data;
	bool wrote = false;

	while (len > 0) {
		struct iovec iov = {(void *)p, len};
		ssize_t n = pwritev2(fd, &iov, 1, -1, RWF_SYNC); /* -1: at the file offset */

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Linux before 4.7 (RWF_SYNC) or 4.6 (pwritev2). */
			if (!wrote && (errno == EOPNOTSUPP || errno == ENOSYS))
				return 1;
			return -1;
		}
		wrote = true;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_durable_sync_content(struct fs_durable_file *f, const void *data, size_t len,
	int write_error)
{
	int r, closed;

	if (f->synced || f->fd < 0 || write_error || len == 0)
		return fs_durable_sync(f, write_error); /* nothing to write: a plain fsync */
	r = write_all_synced(f->fd, data, len);
	if (r == 1)
		return fs_durable_sync(f, fs_write_all(f->fd, data, len) < 0 ? errno : 0);
	if (r < 0) {
		fs_durable_discard(f, "fsutil");
		return -1;
	}
	f->synced = true; /* closed from here on: discard unlinks it by name */
	closed = close(f->fd);
	f->fd = -1;
	/* As fs_sync_and_close: close() can report a deferred write error (NFS). */
	if (closed < 0 && errno != EINTR) {
		fs_durable_discard(f, "fsutil");
		return -1;
	}
	return 0;
}

int fs_durable_publish(struct fs_durable_file *f, const char *final_path, bool *renamed)
{
	char *dir;
	int r;

	if (renamed)
		*renamed = false;
	if (fs_durable_sync(f, 0) < 0)
		return -1;
	if (final_path && rename(f->path, final_path) < 0)
		return -1;
	f->synced = false; /* published: nothing left to discard */
	if (renamed)
		*renamed = final_path != NULL;
	dir = fs_parent_directory(final_path ? final_path : f->path);
	r = fs_fsync_directory(dir);
	free(dir);
	return r;
}

void fs_durable_discard(struct fs_durable_file *f, const char *module)
{
	int saved = errno;
	bool staged = f->fd >= 0 || f->synced;

	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
	f->synced = false;
	if (staged && f->path && unlink(f->path) < 0 && errno != ENOENT)
		log_warn(module, "event=tmp_unlink_failed file=%s error=\"%s\"", f->path,
			strerror(errno));
	errno = saved;
}

void fs_durable_free(struct fs_durable_file *f, const char *module)
{
	fs_durable_discard(f, module);
	free(f->path);
	f->path = NULL;
}

int fs_durable_write_file(const char *tmp_path, const char *final_path, const void *data,
	size_t len, bool *renamed)
{
	struct fs_durable_file f;
	int r;

	if (renamed)
		*renamed = false;
	if (fs_durable_create(&f, tmp_path) < 0)
		return -1;
	r = fs_durable_sync_content(&f, data, len, 0);
	if (r == 0)
		r = fs_durable_publish(&f, final_path, renamed);
	fs_durable_free(&f, "fsutil");
	return r;
}
