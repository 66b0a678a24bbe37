/* queue/spool.c: the outbound queue on disk: message files in msg/, JSON envelopes in env/
 * (their text is queue/envelope.c's), staging in tmp/, each change made durable with
 * fsutil.h's durable-file writer (write a tmp file, fsync it, rename it into place, fsync the
 * directory). See spool.h for the layout. */
#include "queue/spool.h"
#include "bounds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "alloc.h"
#include "fsutil.h"
#include "log.h"

/* Envelope saves may run on several worker threads; the counter keeps their tmp names apart. */
static atomic_ulong envelope_counter;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

char *spool_message_path(const char *spool_path, const char *id)
{
	return fs_path_printf("%s/msg/%s", spool_path, id);
}

/* Reads a whole regular file of at most max octets (caller frees *data). */
static int read_small_file(const char *path, size_t max, char **data, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, saved;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		saved = errno;
	else if (!S_ISREG(st.st_mode))
		saved = EINVAL;
	else if ((uint64_t)st.st_size > max)
		saved = EFBIG;
	else
		saved = 0;
	if (saved) {
		close(fd);
		errno = saved;
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			errno = saved;
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

int spool_load(const char *spool_path, const char *id, struct spool_entry *e, char *err,
	size_t errsz)
{
	char *path, *data;
	size_t len;
	int r;

	if (!spool_id_valid(id)) {
		snprintf(err, errsz, "%s/env/: invalid queue id", spool_path);
		errno = EINVAL;
		return -1;
	}
	path = fs_path_printf("%s/env/%s", spool_path, id);
	if (read_small_file(path, SPOOL_ENVELOPE_MAX, &data, &len) < 0) {
		int saved = errno;

		snprintf(err, errsz, "%s: %s", path,
			saved == EFBIG ? "too big for an envelope" : strerror(saved));
		free(path);
		/* ENOENT: removed meanwhile; anything else means this envelope is unusable. */
		errno = saved == EFBIG ? EINVAL : saved;
		return -1;
	}
	r = spool_envelope_parse(data, len, id, path, e, err, errsz);
	free(data);
	free(path);
	if (r < 0)
		errno = EINVAL;
	return r;
}

/* Writes text to a fresh tmp/ file, fsyncs it, renames it over env/ID and fsyncs env/.
 * *renamed says whether env/ID now holds the new text (even if the final fsync failed). */
static int envelope_write(const char *spool_path, const char *id, const char *text,
	bool *renamed)
{
	unsigned long n = atomic_fetch_add(&envelope_counter, 1) + 1;
	char *tmp = fs_path_printf("%s/tmp/%s.env.%ld.%lu", spool_path, id, fs_process_id(), n);
	char *final = fs_path_printf("%s/env/%s", spool_path, id);
	int r = fs_durable_write_file(tmp, final, text, strlen(text), renamed), saved = errno;

	free(tmp);
	free(final);
	errno = saved;
	return r;
}

int spool_save(const char *spool_path, const struct spool_entry *e)
{
	char *text, *env_path, *msg_path;
	bool renamed, exists;
	int r;

	text = spool_envelope_format(e);
	if (!text)
		return -1;
	/* Saving a removed entry would bring back an envelope without its message. */
	env_path = fs_path_printf("%s/env/%s", spool_path, e->id);
	msg_path = spool_message_path(spool_path, e->id);
	exists = path_exists(env_path) && path_exists(msg_path);
	free(env_path);
	free(msg_path);
	if (!exists) {
		free(text);
		errno = ENOENT;
		return -1;
	}
	r = envelope_write(spool_path, e->id, text, &renamed);
	free(text);
	return r;
}

/* ---- spool directories ---- */

int spool_init(const char *spool_path, char *err, size_t errsz)
{
	static const char *const subdirs[] = {"tmp", "msg", "env"};

	if (fs_make_directories(spool_path) < 0) {
		snprintf(err, errsz, "SpoolPath %s: %s", spool_path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		char *sub = fs_path_printf("%s/%s", spool_path, subdirs[i]);

		if (fs_make_directories(sub) < 0) {
			snprintf(err, errsz, "SpoolPath %s: %s", sub, strerror(errno));
			free(sub);
			return -1;
		}
		free(sub);
	}
	return 0;
}

/* ---- receiving a message ---- */

int spool_message_begin(struct spool_message *m, const char *spool_path, const char *id)
{
	struct fs_durable_file file;
	char *tmp_path;
	int r, saved;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	tmp_path = fs_path_printf("%s/tmp/%s", spool_path, id);
	r = fs_durable_create(&file, tmp_path);
	saved = errno;
	free(tmp_path);
	if (r < 0) {
		errno = saved;
		return -1;
	}
	m->file = file;
	m->spool_path = xstrdup(spool_path);
	m->id = xstrdup(id);
	m->written = 0;
	m->error = 0;
	return 0;
}

int spool_message_write(struct spool_message *m, const void *data, size_t len)
{
	if (m->error == 0 && m->file.fd < 0)
		m->error = EBADF;
	if (m->error == 0 && fs_write_all(m->file.fd, data, len) < 0)
		m->error = errno;
	if (m->error) {
		errno = m->error;
		return -1;
	}
	m->written += len;
	return 0;
}

void spool_message_abort(struct spool_message *m)
{
	fs_durable_discard(&m->file, "spool");
}

int spool_message_prepare(struct spool_message *m)
{
	/* The data must be on disk before a name in msg/ points at it. */
	return fs_durable_sync(&m->file, m->error);
}

void spool_message_release(struct spool_message *m)
{
	fs_durable_free(&m->file, "spool");
	free(m->spool_path);
	free(m->id);
	m->spool_path = m->id = NULL;
}

/* Takes back a message already renamed into msg/ when its envelope could not be made durable:
 * without an envelope it is not queued, and the client will be told so. */
static void unqueue_message(const char *msg_path, const char *msg_dir)
{
	int saved = errno;

	if (unlink(msg_path) < 0 && errno != ENOENT)
		log_warn("spool", "event=unlink_failed file=%s error=%s", msg_path, strerror(errno));
	fs_fsync_directory(msg_dir);
	errno = saved;
}

int spool_message_commit(struct spool_message *m, const struct spool_entry *e)
{
	struct spool_entry sized;
	char *text = NULL, *msg_path = NULL, *msg_dir = NULL, *env_path = NULL, *env_dir = NULL;
	bool renamed;
	int saved = 0;

	if (m->file.fd < 0 && !m->file.synced) {
		errno = EBADF;
		return -1;
	}
	if (m->error) {
		saved = m->error;
		spool_message_abort(m);
		errno = saved;
		return -1;
	}
	/* The envelope records the size actually written, whatever the caller counted. */
	sized = *e;
	sized.size = m->written;
	if (!e->id || strcmp(e->id, m->id) != 0 || !(text = spool_envelope_format(&sized))) {
		spool_message_abort(m);
		errno = EINVAL;
		return -1;
	}
	msg_path = spool_message_path(m->spool_path, m->id);
	msg_dir = fs_path_printf("%s/msg", m->spool_path);
	env_path = fs_path_printf("%s/env/%s", m->spool_path, m->id);
	env_dir = fs_path_printf("%s/env", m->spool_path);
	/* msg/ID of a queued entry is immutable: a reused id must not replace it. */
	if (path_exists(env_path)) {
		spool_message_abort(m);
		saved = EEXIST;
		goto out;
	}
	/* msg/ (renamed and fsync'd) before env/: an envelope must never name a message a crash
	 * could lose. */
	if (fs_durable_publish(&m->file, msg_path, &renamed) < 0) {
		saved = errno;
		if (renamed)
			unqueue_message(msg_path, msg_dir);
		else
			spool_message_abort(m);
		goto out;
	}
	if (envelope_write(m->spool_path, m->id, text, &renamed) < 0) {
		saved = errno;
		if (renamed) {
			unlink(env_path);
			fs_fsync_directory(env_dir);
		}
		unqueue_message(msg_path, msg_dir);
		goto out;
	}
out:
	free(text);
	free(msg_path);
	free(msg_dir);
	free(env_path);
	free(env_dir);
	if (saved) {
		errno = saved;
		return -1;
	}
	return 0;
}

/* ---- listing, removal, recovery ---- */

static int compare_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls fn(dir_fd, name, arg) for every name in dir except "." and "..". fn returns 0 to go
 * on or -1 to stop with errno. Returns 0 or -1 with errno. */
static int for_each_name(const char *dir_path, int (*fn)(int, const char *, void *), void *arg)
{
	DIR *dir = opendir(dir_path);
	struct dirent *de;
	int saved;

	if (!dir)
		return -1;
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fn(dirfd(dir), de->d_name, arg) < 0)
			break;
	}
	saved = errno;
	closedir(dir);
	errno = saved;
	return saved ? -1 : 0;
}

struct id_list {
	char **ids;
	size_t count, cap;
};

static int collect_id(int dir_fd, const char *name, void *arg)
{
	struct id_list *l = arg;
	struct stat st;

	if (!spool_id_valid(name))
		return 0;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Removed while we listed: not an entry any more. */
		if (errno == ENOENT) {
			errno = 0;
			return 0;
		}
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
	}
	l->ids[l->count++] = xstrdup(name);
	return 0;
}

int spool_list(const char *spool_path, char ***ids, size_t *count)
{
	struct id_list l = {0};
	char *dir = fs_path_printf("%s/env", spool_path);
	int r = for_each_name(dir, collect_id, &l);

	free(dir);
	if (r < 0) {
		int saved = errno;

		spool_list_free(l.ids, l.count);
		errno = saved;
		return -1;
	}
	if (l.count > 1)
		qsort(l.ids, l.count, sizeof(*l.ids), compare_ids);
	*ids = l.ids;
	*count = l.count;
	return 0;
}

void spool_list_free(char **ids, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

/* Unlinks path and fsyncs dir when something was removed. ENOENT is success. */
static int remove_durably(const char *path, const char *dir)
{
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -1;
	return fs_fsync_directory(dir);
}

int spool_remove(const char *spool_path, const char *id)
{
	char *env_path, *env_dir, *msg_path, *msg_dir;
	int r, saved = 0;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	env_path = fs_path_printf("%s/env/%s", spool_path, id);
	env_dir = fs_path_printf("%s/env", spool_path);
	msg_path = spool_message_path(spool_path, id);
	msg_dir = fs_path_printf("%s/msg", spool_path);
	/* The envelope goes first: once it is gone the entry is gone, and a crash before the
	 * message is unlinked leaves only an orphan for spool_recover. */
	r = remove_durably(env_path, env_dir);
	if (r < 0)
		saved = errno;
	else if (remove_durably(msg_path, msg_dir) < 0)
		saved = errno;
	free(env_path);
	free(env_dir);
	free(msg_path);
	free(msg_dir);
	if (saved) {
		errno = saved;
		return -1;
	}
	return 0;
}

struct recovery {
	const char *spool_path;
	const char *dir_name; /* "tmp", "msg" or "env": what is being walked */
	int other_fd;         /* env/ when walking msg/; msg/ when walking env/ */
	int removed;
};

static int recover_name(int dir_fd, const char *name, void *arg)
{
	struct recovery *rc = arg;
	struct stat st;

	if (strcmp(rc->dir_name, "tmp") != 0) {
		/* Only our own names are judged; anything else an operator put there stays. */
		if (!spool_id_valid(name))
			return 0;
		if (fstatat(rc->other_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;
		if (errno != ENOENT) {
			log_warn("spool", "event=recover_stat_failed id=%s error=%s", name,
				strerror(errno));
			return 0;
		}
		if (strcmp(rc->dir_name, "env") == 0) {
			/* Not ours to decide here: the scheduler fails it and reports it. */
			log_warn("spool", "event=envelope_without_message id=%s", name);
			return 0;
		}
	}
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (unlinkat(dir_fd, name, 0) < 0) {
		if (errno != ENOENT)
			log_warn("spool", "event=recover_unlink_failed file=%s/%s/%s error=%s",
				rc->spool_path, rc->dir_name, name, strerror(errno));
		return 0;
	}
	log_info("spool", "event=%s file=%s/%s/%s",
		strcmp(rc->dir_name, "tmp") == 0 ? "tmp_removed" : "orphan_removed", rc->spool_path,
		rc->dir_name, name);
	rc->removed++;
	return 0;
}

/* Walks SpoolPath/dir_name with recover_name; other_name is the directory whose entries are
 * checked for each name (NULL for tmp/). Returns files removed or -1. */
static int recover_directory(const char *spool_path, const char *dir_name, const char *other_name)
{
	struct recovery rc = {.spool_path = spool_path, .dir_name = dir_name, .other_fd = -1};
	char *dir = fs_path_printf("%s/%s", spool_path, dir_name);
	int r, saved;

	if (other_name) {
		char *other = fs_path_printf("%s/%s", spool_path, other_name);

		rc.other_fd = open(other, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		saved = errno;
		free(other);
		if (rc.other_fd < 0) {
			free(dir);
			errno = saved;
			return -1;
		}
	}
	r = for_each_name(dir, recover_name, &rc);
	saved = errno;
	if (rc.other_fd >= 0)
		close(rc.other_fd);
	/* The removals are made durable so a crash does not bring orphans back. */
	if (r == 0 && rc.removed > 0 && fs_fsync_directory(dir) < 0)
		log_warn("spool", "event=fsync_failed dir=%s error=%s", dir, strerror(errno));
	free(dir);
	if (r < 0) {
		errno = saved;
		return -1;
	}
	return rc.removed;
}

int spool_recover(const char *spool_path)
{
	int total = 0, r;

	r = recover_directory(spool_path, "tmp", NULL);
	if (r < 0)
		return -1;
	total += r;
	r = recover_directory(spool_path, "msg", "env");
	if (r < 0)
		return -1;
	total += r;
	/* Walks env/ only to warn: recover_name never removes an envelope. */
	if (recover_directory(spool_path, "env", "msg") < 0)
		return -1;
	return total;
}
