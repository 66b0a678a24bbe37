/* store/maildrop_delivery.c: writing new messages into a Maildir: unique names, tmp/ files
 * made durable and published into new/ with fsutil.h's durable-file writer, and the cleanup of
 * tmp/ files that dead deliveries left. The naming follows https://cr.yp.to/proto/maildir.html
 * and Dovecot's conventions. */
#include "store/maildrop_delivery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"

/* Attempts at a fresh unique name when O_EXCL finds one taken (only after a clock step back or
 * a pid reused within the same microsecond on the same host). */
#define UNIQUE_NAME_ATTEMPTS 8

/* Deliveries run on several worker threads at once; the counter keeps their names apart
 * within one microsecond (Dovecot's "Q" field). */
static atomic_ulong delivery_counter;

/* Returns 1 if it created the directory, 0 if it was already there, -1 with errno. */
static int make_directory(const char *path)
{
	if (mkdir(path, 0700) == 0)
		return 1;
	/* Another thread or process may be creating the same Maildir right now. */
	if (errno == EEXIST)
		return 0;
	return -1;
}

int maildrop_create(const char *maildrop_path)
{
	static const char *const subdirs[] = {"tmp", "new", "cur"};
	bool created_sub = false;
	int r;

	r = make_directory(maildrop_path);
	if (r < 0)
		return -1;
	if (r == 1) {
		char *parent = fs_parent_directory(maildrop_path);

		r = fs_fsync_directory(parent);
		free(parent);
		if (r < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *sub = fs_path_printf("%s/%s", maildrop_path, subdirs[i]);

		r = make_directory(sub);
		free(sub);
		if (r < 0)
			return -1;
		if (r == 1)
			created_sub = true;
	}
	if (created_sub && fs_fsync_directory(maildrop_path) < 0)
		return -1;
	return 0;
}

/* The host part of a unique name. The Maildir spec: "replace / with \057 and : with \072" so
 * the name stays one path component and ':' still only starts the info (flags) part. Read
 * once: a delivery should not cost a uname(2). */
static char *maildir_host;
static pthread_once_t maildir_host_once = PTHREAD_ONCE_INIT;

static void maildir_hostname_init(void)
{
	char host[256];
	char *out, *o;

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	out = o = xmalloc(strlen(host) * 4 + 1);
	for (const char *h = host; *h; h++) {
		if (*h == '/') {
			memcpy(o, "\\057", 4);
			o += 4;
		} else if (*h == ':') {
			memcpy(o, "\\072", 4);
			o += 4;
		} else {
			*o++ = *h;
		}
	}
	*o = '\0';
	maildir_host = out;
}

/* "<sec>.M<usec>P<pid>Q<counter>.<host>": Dovecot's form of the Maildir unique name. */
static char *maildir_unique_name(void)
{
	struct timespec now;
	unsigned long counter = atomic_fetch_add(&delivery_counter, 1) + 1;
	pthread_once(&maildir_host_once, maildir_hostname_init);
	clock_gettime(CLOCK_REALTIME, &now);
	return fs_path_printf("%lld.M%ldP%ldQ%lu.%s", (long long)now.tv_sec, now.tv_nsec / 1000,
		fs_process_id(), counter, maildir_host);
}

/* Creates a new file in tmp/ under a unique name. Returns 0 with *unique set, or -1 with
 * errno (nothing allocated). */
static int open_unique_tmp(const char *maildrop_path, struct fs_durable_file *file,
	char **unique)
{
	for (int attempt = 0; attempt < UNIQUE_NAME_ATTEMPTS; attempt++) {
		char *name = maildir_unique_name();
		char *tmp_path = fs_path_printf("%s/tmp/%s", maildrop_path, name);
		int r = fs_durable_create(file, tmp_path), saved = errno;

		free(tmp_path);
		if (r == 0) {
			*unique = name;
			return 0;
		}
		free(name);
		errno = saved;
		if (saved != EEXIST)
			return -1;
	}
	return -1;
}

int maildrop_delivery_begin(struct maildrop_delivery *d, const char *maildrop_path)
{
	struct fs_durable_file file;
	char *unique;
	int r = open_unique_tmp(maildrop_path, &file, &unique);

	/* The Maildir (or its tmp/) is made when found missing, not checked on every delivery:
	 * that was four mkdir(2) per message. */
	if (r < 0 && errno == ENOENT) {
		if (maildrop_create(maildrop_path) < 0)
			return -1;
		r = open_unique_tmp(maildrop_path, &file, &unique);
	}
	if (r < 0)
		return -1;
	d->file = file;
	d->maildrop_path = xstrdup(maildrop_path);
	d->unique = unique;
	d->written = 0;
	d->error = 0;
	d->buf = NULL;
	d->buf_len = 0;
	d->new_path = NULL;
	d->folder = NULL;
	return 0;
}

/* Writes out what is buffered; errors are remembered like maildrop_delivery_write's. */
static int delivery_flush(struct maildrop_delivery *d)
{
	if (d->error == 0 && d->buf_len > 0 && fs_write_all(d->file.fd, d->buf, d->buf_len) < 0)
		d->error = errno;
	d->buf_len = 0;
	if (d->error) {
		errno = d->error;
		return -1;
	}
	return 0;
}

int maildrop_delivery_write(struct maildrop_delivery *d, const void *data, size_t len)
{
	const char *p = data;

	if (d->error == 0 && d->file.fd < 0)
		d->error = EBADF;
	if (d->error) {
		errno = d->error;
		return -1;
	}
	/* A message is written in MAILDROP_WRITE_BUFFER pieces, not in as many writes as it
	 * came in chunks; a small one is written whole by the commit, on a worker thread. */
	d->written += len;
	if (d->buf_len + len > MAILDROP_WRITE_BUFFER && delivery_flush(d) < 0)
		return -1;
	if (len >= MAILDROP_WRITE_BUFFER) {
		if (fs_write_all(d->file.fd, p, len) < 0) {
			d->error = errno;
			return -1;
		}
		return 0;
	}
	if (!d->buf)
		d->buf = xmalloc(MAILDROP_WRITE_BUFFER);
	memcpy(d->buf + d->buf_len, p, len);
	d->buf_len += len;
	return 0;
}

int maildrop_delivery_flush(struct maildrop_delivery *d)
{
	if (d->error == 0 && d->file.fd < 0)
		d->error = EBADF;
	return delivery_flush(d);
}

int maildrop_delivery_open_read(const struct maildrop_delivery *d)
{
	if (d->error || d->file.fd < 0 || !d->file.path) {
		errno = d->error ? d->error : EBADF;
		return -1;
	}
	/* The writer's descriptor is write-only (fsutil.h). */
	return open(d->file.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/* Reads len octets at offset of fd into out. Returns 0, or -1 with errno. */
static int read_exact(int fd, char *out, size_t len, off_t offset)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, out + got, len - got, offset + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* the file is shorter than what was written to it */
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

ssize_t maildrop_delivery_read_head(struct maildrop_delivery *d, char *out, size_t size)
{
	uint64_t in_file = d->written - d->buf_len;
	size_t got = size < in_file ? size : (size_t)in_file;

	if (d->error || d->file.fd < 0) {
		errno = d->error ? d->error : EBADF;
		return -1;
	}
	if (got > 0) {
		int fd = maildrop_delivery_open_read(d);
		if (fd < 0)
			return -1;
		int r = read_exact(fd, out, got, 0), saved = errno;
		close(fd);
		if (r < 0) {
			errno = saved;
			return -1;
		}
	}
	size_t from_buf = size - got < d->buf_len ? size - got : d->buf_len;
	memcpy(out + got, d->buf, from_buf);
	return (ssize_t)(got + from_buf);
}

/* The head replaced in the buffer: nothing of the message is in the file yet, so the message
 * is taken again, the new head then the old buffer's rest, by the ordinary writer. */
static int replace_head_in_buffer(struct maildrop_delivery *d, size_t old_head_len,
	const char *new_head, size_t new_len)
{
	char *old = d->buf;
	size_t rest = d->buf_len - old_head_len;

	d->buf = NULL;
	d->buf_len = 0;
	d->written = 0;
	int r = maildrop_delivery_write(d, new_head, new_len);
	if (r == 0 && rest > 0)
		r = maildrop_delivery_write(d, old + old_head_len, rest);
	free(old);
	return r;
}

/* Copies the octets of in_fd from offset to its end to out_fd. */
static int copy_rest(int in_fd, off_t offset, int out_fd, uint64_t len)
{
	while (len > 0) {
		ssize_t r = copy_file_range(in_fd, &offset, out_fd, NULL,
			len > (1u << 30) ? (1u << 30) : (size_t)len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
				     errno == EINVAL)) {
			/* No in-kernel copy here: an ordinary read/write loop. */
			char chunk[16384];
			ssize_t n = pread(in_fd, chunk, sizeof(chunk), offset);
			if (n <= 0 || fs_write_all(out_fd, chunk, (size_t)n) < 0) {
				if (n == 0)
					errno = EIO;
				return -1;
			}
			offset += n;
			len -= (uint64_t)n;
			continue;
		}
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		len -= (uint64_t)r;
	}
	return 0;
}

int maildrop_delivery_replace_head(struct maildrop_delivery *d, size_t old_head_len,
	const char *new_head, size_t new_len)
{
	struct fs_durable_file file;
	char *unique;
	int saved;

	if (d->error || d->file.fd < 0) {
		errno = d->error ? d->error : EBADF;
		return -1;
	}
	if (old_head_len > d->written) {
		errno = EINVAL;
		return -1;
	}
	if (d->written == d->buf_len)
		return replace_head_in_buffer(d, old_head_len, new_head, new_len);
	/* Part of the message is in the file: a new file takes the new head and the old one's
	 * rest; the old one is removed. Both are in tmp/, unseen by any reader. */
	if (delivery_flush(d) < 0)
		return -1;
	if (open_unique_tmp(d->maildrop_path, &file, &unique) < 0) {
		d->error = errno;
		return -1;
	}
	uint64_t rest = d->written - old_head_len;
	int in_fd = maildrop_delivery_open_read(d);
	if (in_fd < 0 || fs_write_all(file.fd, new_head, new_len) < 0 ||
	    copy_rest(in_fd, (off_t)old_head_len, file.fd, rest) < 0) {
		saved = errno;
		if (in_fd >= 0)
			close(in_fd);
		fs_durable_free(&file, "maildrop");
		free(unique);
		d->error = saved;
		errno = saved;
		return -1;
	}
	close(in_fd);
	fs_durable_free(&d->file, "maildrop");
	free(d->unique);
	d->file = file;
	d->unique = unique;
	d->written = new_len + rest;
	return 0;
}

void maildrop_delivery_abort(struct maildrop_delivery *d)
{
	free(d->buf);
	d->buf = NULL;
	d->buf_len = 0;
	fs_durable_discard(&d->file, "maildrop");
}

/* Gives up d after a failed step: its tmp file is removed, errno kept. Returns -1. */
static int delivery_fail(struct maildrop_delivery *d)
{
	maildrop_delivery_abort(d);
	return -1;
}

int maildrop_delivery_prepare(struct maildrop_delivery *d)
{
	int r;

	/* The data must be on disk before the name in new/ says the message exists. A message
	 * still all in the buffer (most are: MAILDROP_WRITE_BUFFER) is written and synced in one
	 * system call; a longer one has its rest written first, then an fsync. */
	if (!d->file.synced && d->file.fd >= 0 && d->error == 0 && d->written == d->buf_len) {
		r = fs_durable_sync_content(&d->file, d->buf, d->buf_len, 0);
	} else {
		/* A write error makes the sync fail. */
		if (!d->file.synced && d->file.fd >= 0)
			delivery_flush(d);
		r = fs_durable_sync(&d->file, d->error);
	}
	free(d->buf);
	d->buf = NULL;
	d->buf_len = 0;
	return r;
}

/* A Maildir++ folder (maildrop/.Junk): a Maildir of its own with a "maildirfolder" file, so
 * a Dovecot or Courier reading the maildrop later knows it for a folder. Made on first use;
 * every directory and the file fsync'd into their parents. Returns 0, or -1 with errno. */
static int folder_create(const char *folder_path)
{
	char *marker = fs_path_printf("%s/maildirfolder", folder_path);
	int r = maildrop_create(folder_path);

	if (r == 0) {
		int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd >= 0) {
			r = fsync(fd);
			close(fd);
			if (r == 0)
				r = fs_fsync_directory(folder_path);
		} else if (errno != EEXIST) {
			r = -1;
		}
	}
	free(marker);
	return r;
}

int maildrop_delivery_publish(struct maildrop_delivery *d)
{
	char *new_path, *folder_path;
	bool renamed;
	int r;

	if (!d->file.synced) {
		errno = EBADF;
		return -1;
	}
	folder_path = d->folder ? fs_path_printf("%s/%s", d->maildrop_path, d->folder) :
		xstrdup(d->maildrop_path);
	/* ",S=<size>" is Dovecot's size hint; the POP3 side still stats the file. */
	new_path = fs_path_printf("%s/new/%s,S=%llu", folder_path, d->unique,
		(unsigned long long)d->written);
	r = fs_durable_publish(&d->file, new_path, &renamed);
	/* new/ had gone (made again), or the folder's first message (made now). */
	if (r < 0 && !renamed && errno == ENOENT &&
	    (d->folder ? folder_create(folder_path) : maildrop_create(folder_path)) == 0)
		r = fs_durable_publish(&d->file, new_path, &renamed);
	free(folder_path);
	if (r < 0 && !renamed) {
		free(new_path);
		return delivery_fail(d);
	}
	if (r < 0) {
		/* The rename may not survive a crash, so we cannot promise the message: take it
		 * back rather than risk delivering it twice after the client retries. */
		int saved = errno;

		unlink(new_path);
		free(new_path);
		errno = saved;
		return -1;
	}
	d->new_path = new_path;
	return 0;
}

int maildrop_delivery_unpublish(struct maildrop_delivery *d)
{
	char *new_dir;
	int r = 0;

	if (!d->new_path)
		return 0;
	new_dir = fs_parent_directory(d->new_path);
	/* ENOENT: a reader moved it to cur/ in the moment it was visible; nothing to take. */
	if ((unlink(d->new_path) < 0 && errno != ENOENT) || fs_fsync_directory(new_dir) < 0) {
		log_error("maildrop", "event=unpublish_failed file=%s reason=\"%s\"", d->new_path,
			strerror(errno));
		r = -1;
	}
	free(new_dir);
	free(d->new_path);
	d->new_path = NULL;
	return r;
}

int maildrop_delivery_commit(struct maildrop_delivery *d)
{
	if (maildrop_delivery_prepare(d) < 0)
		return -1;
	return maildrop_delivery_publish(d);
}

int maildrop_deliveries_commit(struct maildrop_delivery *ds, size_t count)
{
	int saved = 0;

	/* Everything that can fail for lack of space or a bad disk fails here, before any
	 * reader can see a copy. */
	for (size_t i = 0; i < count && !saved; i++)
		if (maildrop_delivery_prepare(&ds[i]) < 0)
			saved = errno;
	for (size_t i = 0; i < count && !saved; i++)
		if (maildrop_delivery_publish(&ds[i]) < 0)
			saved = errno;
	if (!saved)
		return 0;
	for (size_t i = 0; i < count; i++) {
		maildrop_delivery_unpublish(&ds[i]);
		maildrop_delivery_abort(&ds[i]);
	}
	errno = saved;
	return -1;
}

void maildrop_delivery_release(struct maildrop_delivery *d)
{
	maildrop_delivery_abort(d);
	fs_durable_free(&d->file, "maildrop");
	free(d->maildrop_path);
	free(d->unique);
	free(d->new_path);
	d->maildrop_path = d->unique = d->new_path = NULL;
}

/* The Maildir spec: a file in tmp/ untouched for 36 hours is the leftover of a delivery
 * that died (a crash between open and rename); nothing will ever finish it. Run while the
 * maildrop is locked for POP3; deliveries still being written are minutes old at most
 * (SMTPDataTimeoutSeconds per block). */
void maildrop_clean_tmp(const char *maildrop_path, time_t now)
{
	char *tmp_dir = fs_path_printf("%s/tmp", maildrop_path);
	DIR *dir = opendir(tmp_dir);
	unsigned removed = 0, seen = 0;
	struct dirent *e;

	if (!dir) {
		free(tmp_dir);
		return;
	}
	while ((e = readdir(dir)) != NULL && seen++ < MAILDROP_TMP_SCAN_MAX) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		time_t newest = st.st_mtime;
		if (st.st_ctime > newest)
			newest = st.st_ctime;
		if (st.st_atime > newest)
			newest = st.st_atime;
		if (now - newest < MAILDROP_TMP_STALE_SECONDS)
			continue;
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	free(tmp_dir);
	if (removed)
		log_info("maildrop", "event=tmp_cleaned path=%s removed=%u", maildrop_path, removed);
}

/* The end of a run of decimal digits at p, or NULL if p has none. */
static const char *skip_digits(const char *p)
{
	const char *start = p;

	while (*p >= '0' && *p <= '9')
		p++;
	return p == start ? NULL : p;
}

/* Whether name is "<sec>.M<usec>P<pid>Q<counter>.<host>" (maildir_unique_name) with this
 * host's name; sets *pid. */
static bool unique_name_is_ours(const char *name, long *pid)
{
	const char *p = skip_digits(name);

	pthread_once(&maildir_host_once, maildir_hostname_init);
	if (!p || p[0] != '.' || p[1] != 'M' || !(p = skip_digits(p + 2)) || *p != 'P')
		return false;
	errno = 0;
	*pid = strtol(p + 1, NULL, 10);
	if (errno || *pid <= 0 || !(p = skip_digits(p + 1)) || *p != 'Q' ||
	    !(p = skip_digits(p + 1)) || *p != '.')
		return false;
	return strcmp(p + 1, maildir_host) == 0;
}

/* Whether a tmp/ file of pid may still be written to. Our own pid has started no delivery
 * yet (this runs before the server accepts anything), so a file with it is an earlier
 * process's that had the same pid (after a reboot, a service often gets the same one). A
 * process of another user (EPERM) counts as alive: it may be another mailpopbox. */
static bool writer_may_be_alive(long pid)
{
	if (pid == fs_process_id())
		return false;
	if ((long)(pid_t)pid != pid)
		return false; /* no such process can exist */
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

unsigned maildrop_recover_tmp(const char *maildrop_path)
{
	char *tmp_dir = fs_path_printf("%s/tmp", maildrop_path);
	int dir_fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	unsigned removed = 0, seen = 0;
	struct dirent *e;
	DIR *dir;

	if (dir_fd < 0 || !(dir = fdopendir(dir_fd))) {
		if (dir_fd >= 0)
			close(dir_fd);
		else if (errno != ENOENT)
			log_warn("maildrop", "event=tmp_recover_failed path=%s reason=\"%s\"", tmp_dir,
				strerror(errno));
		free(tmp_dir);
		return 0;
	}
	while ((e = readdir(dir)) != NULL && seen++ < MAILDROP_TMP_SCAN_MAX) {
		struct stat st;
		long pid;

		if (!unique_name_is_ours(e->d_name, &pid) || writer_may_be_alive(pid))
			continue;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
			removed++;
		else
			log_warn("maildrop", "event=tmp_unlink_failed file=%s/%s reason=\"%s\"",
				tmp_dir, e->d_name, strerror(errno));
	}
	closedir(dir);
	if (removed)
		log_info("maildrop", "event=tmp_recovered path=%s removed=%u", maildrop_path,
			removed);
	free(tmp_dir);
	return removed;
}

