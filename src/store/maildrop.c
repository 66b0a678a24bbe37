/* maildrop.c: the Maildir store behind a MaildropPath: durable delivery into new/ (SMTP side),
 * and locked listing, unique ids and deletion of new/, cur/ and legacy "*.msg" files (POP3 side).
 * The Maildir layout and naming follow https://cr.yp.to/proto/maildir.html and Dovecot's
 * conventions, so Dovecot, mutt and friends can read the same directory. */
#include "store/maildrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "mail/dotstuff.h"

#define MAILDROP_LOCK_NAME ".mailpopbox.lock"
/* The original Go server stored each message as "<uuid>.msg" directly in MaildropPath. */
#define LEGACY_SUFFIX ".msg"
/* Attempts at a fresh unique name when O_EXCL finds one taken (only after a clock step back or
 * a pid reused within the same microsecond on the same host). */
#define UNIQUE_NAME_ATTEMPTS 8
/* Read size when counting a legacy file's RETR size at maildrop_open. */
#define LEGACY_READ_CHUNK (16 * 1024)

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

/* Creates MaildropPath and tmp/ new/ cur/ as needed; a directory we create is only known to
 * survive a crash once its parent has been fsync'd. */
static int maildir_create(const char *maildrop_path)
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
		if (maildir_create(maildrop_path) < 0)
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
	if (d->file.synced)
		return 0;
	if (d->file.fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (d->error) {
		errno = d->error;
		return delivery_fail(d);
	}
	if (delivery_flush(d) < 0)
		return delivery_fail(d);
	free(d->buf);
	d->buf = NULL;
	/* The data must be on disk before the name in new/ says the message exists. */
	return fs_durable_sync(&d->file);
}

int maildrop_delivery_publish(struct maildrop_delivery *d)
{
	char *new_path;
	bool renamed;
	int r;

	if (!d->file.synced) {
		errno = EBADF;
		return -1;
	}
	/* ",S=<size>" is Dovecot's size hint; the POP3 side still stats the file. */
	new_path = fs_path_printf("%s/new/%s,S=%llu", d->maildrop_path, d->unique,
		(unsigned long long)d->written);
	r = fs_durable_publish(&d->file, new_path, &renamed);
	if (r < 0 && !renamed && errno == ENOENT && maildir_create(d->maildrop_path) == 0)
		r = fs_durable_publish(&d->file, new_path, &renamed); /* new/ had gone: made again */
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
	new_dir = fs_path_printf("%s/new", d->maildrop_path);
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

/* ---- POP3 access ---- */

/* RFC 1939 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. */
static bool uidl_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > POP3_UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The part of a Maildir file name that never changes: the spec's info part starts at ':'
 * ("unique:2,FLAGS", added when a reader moves the file to cur/), and Dovecot appends
 * ",S=<size>" and ",W=<virtual size>" to the unique part. Returns its length. */
static size_t maildir_base_length(const char *name)
{
	const char *colon = strchr(name, ':');
	size_t len = colon ? (size_t)(colon - name) : strlen(name);

	for (;;) {
		const char *comma = memrchr(name, ',', len);
		const char *p;

		if (!comma || (comma[1] != 'S' && comma[1] != 'W') || comma[2] != '=')
			break;
		p = comma + 3;
		if (p == name + len)
			break;
		while (p < name + len && *p >= '0' && *p <= '9')
			p++;
		if (p != name + len)
			break;
		len = (size_t)(comma - name);
	}
	return len;
}

/* The id itself when RFC 1939 allows it (so ids read like file names and match what the
 * original server said), otherwise the SHA-256 of it in hex: still stable and unique. */
static void uidl_from_base(char out[POP3_UIDL_MAX + 1], const char *base, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (uidl_is_valid(base, len)) {
		memcpy(out, base, len);
		out[len] = '\0';
		return;
	}
	SHA256((const unsigned char *)base, len, digest);
	for (size_t i = 0; i < sizeof(digest); i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[2 * sizeof(digest)] = '\0';
}

enum listed_dir { LISTED_NEW, LISTED_CUR, LISTED_ROOT };

struct listed_message {
	struct maildrop_message msg;
	struct timespec mtime;
	size_t name_offset; /* file name inside msg.path */
};

/* Compares digit runs by value so "1700000000.M9P1Q2" sorts before "1700000000.M10P1Q1":
 * the seconds, microseconds and counter in Maildir names then order deliveries that share an
 * mtime. Anything else compares bytewise, so the order is total and deterministic. */
static int compare_names_naturally(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *ea, *eb;
			size_t la, lb;
			int c;

			while (*a == '0' && a[1] >= '0' && a[1] <= '9')
				a++;
			while (*b == '0' && b[1] >= '0' && b[1] <= '9')
				b++;
			for (ea = a; *ea >= '0' && *ea <= '9'; ea++)
				;
			for (eb = b; *eb >= '0' && *eb <= '9'; eb++)
				;
			la = (size_t)(ea - a);
			lb = (size_t)(eb - b);
			if (la != lb)
				return la < lb ? -1 : 1;
			c = memcmp(a, b, la);
			if (c)
				return c;
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	if (*a || *b)
		return *a ? 1 : -1;
	return 0;
}

static int compare_arrival(const void *pa, const void *pb)
{
	const struct listed_message *a = pa, *b = pb;
	int c;

	if (a->mtime.tv_sec != b->mtime.tv_sec)
		return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
	if (a->mtime.tv_nsec != b->mtime.tv_nsec)
		return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
	c = compare_names_naturally(a->msg.path + a->name_offset, b->msg.path + b->name_offset);
	if (c)
		return c;
	/* Names equal only across directories; full paths differ. */
	return strcmp(a->msg.path, b->msg.path);
}

/* Same id first, then arrival order, so the earliest of a duplicate set is kept. */
static int compare_uidl_then_arrival(const void *pa, const void *pb)
{
	const struct listed_message *a = pa, *b = pb;
	int c = strcmp(a->msg.uidl, b->msg.uidl);

	return c ? c : compare_arrival(pa, pb);
}

struct listing {
	struct listed_message *items;
	size_t count, cap;
};

static bool is_legacy_name(const char *name, size_t len)
{
	size_t suffix = sizeof(LEGACY_SUFFIX) - 1;

	return len > suffix && memcmp(name + len - suffix, LEGACY_SUFFIX, suffix) == 0;
}

/* Opens a message file for reading. O_NOFOLLOW and O_NONBLOCK: the listing only takes regular
 * files, and a name swapped for a symlink or a FIFO since must neither be followed nor block
 * the thread (the event loop, for RETR) on open. */
static int open_message_at(int dir_fd, const char *name)
{
	int fd;

	do
		fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* RFC 1939 5 (LIST) and 11: a message's size is the octets RETR sends before byte-stuffing.
 * The original Go server wrote "*.msg" files with bare LF line ends, maybe without a final one,
 * and RETR sends those lines with CRLF, so the file size falls short. The file is read once,
 * here on the worker, and counted by the RETR filter's own rules (mail/dotstuff.h). Maildir
 * files are stored with CRLF, so their file size is already exact and they are not read.
 * Returns 0, or -1 with errno (size untouched). */
static int legacy_message_size(int dir_fd, const char *name, uint64_t *size)
{
	char chunk[LEGACY_READ_CHUNK];
	struct dotstuff_size counter;
	int fd, saved;

	fd = open_message_at(dir_fd, name);
	if (fd < 0)
		return -1;
	dotstuff_size_init(&counter);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		dotstuff_size_feed(&counter, chunk, (size_t)n);
	}
	close(fd);
	*size = dotstuff_size_finish(&counter);
	return 0;
}

/* One readdir pass over a directory, one fstatat per candidate; only legacy "*.msg" files are
 * also read, for their size. */
static int list_directory(struct listing *l, const char *dir_path, enum listed_dir kind)
{
	DIR *dir;
	struct dirent *de;
	int dfd, saved;

	do
		dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (dfd < 0 && errno == EINTR);
	if (dfd < 0)
		return -1;
	dir = fdopendir(dfd);
	if (!dir) {
		saved = errno;
		close(dfd);
		errno = saved;
		return -1;
	}
	for (;;) {
		struct listed_message *m;
		struct stat st;
		size_t len, base_len;
		uint64_t size;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			if (errno) {
				saved = errno;
				closedir(dir);
				errno = saved;
				return -1;
			}
			break;
		}
		/* Dotfiles are ours (the lock file) or other tools' state, never messages. */
		if (de->d_name[0] == '.')
			continue;
		len = strlen(de->d_name);
		if (kind == LISTED_ROOT && !is_legacy_name(de->d_name, len))
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* Another Maildir reader moved it (new/ -> cur/, listed later) or removed
			 * it. */
			if (errno == ENOENT)
				continue;
			saved = errno;
			closedir(dir);
			errno = saved;
			return -1;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		size = (uint64_t)st.st_size;
		if (kind == LISTED_ROOT && legacy_message_size(dfd, de->d_name, &size) < 0) {
			if (errno == ENOENT)
				continue;
			/* Still listed, so the user can DELE it; RETR will answer -ERR if it
			 * stays unreadable. */
			log_warn("maildrop", "event=legacy_read_failed file=%s/%s error=%s", dir_path,
				de->d_name, strerror(errno));
		}
		if (l->count == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 256;
			l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
		}
		m = &l->items[l->count++];
		m->msg.path = fs_path_printf("%s/%s", dir_path, de->d_name);
		m->msg.size = size;
		m->msg.file_size = (uint64_t)st.st_size;
		m->msg.deleted = false;
		m->name_offset = strlen(m->msg.path) - len;
		m->mtime = st.st_mtim;
		/* The original server's UIDL for "X.msg" is "X". */
		base_len = kind == LISTED_ROOT ? len - (sizeof(LEGACY_SUFFIX) - 1)
					       : maildir_base_length(de->d_name);
		uidl_from_base(m->msg.uidl, de->d_name, base_len);
	}
	closedir(dir);
	return 0;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i].msg.path);
	free(l->items);
}

/* RFC 1939 7 requires unique ids. Two files can share one if another Maildir reader renamed a
 * file while we listed (seen in new/ and cur/) or a legacy "X.msg" sits beside a Maildir "X".
 * The later copy is left out of this session; it is listed again once the first is gone. */
static void listing_drop_duplicate_uidls(struct listing *l)
{
	size_t kept = 0;

	if (l->count < 2)
		return;
	qsort(l->items, l->count, sizeof(*l->items), compare_uidl_then_arrival);
	for (size_t i = 0; i < l->count; i++) {
		if (kept > 0 && strcmp(l->items[kept - 1].msg.uidl, l->items[i].msg.uidl) == 0) {
			log_warn("maildrop", "event=duplicate_uidl file=%s uidl=%s",
				l->items[i].msg.path, l->items[i].msg.uidl);
			free(l->items[i].msg.path);
			continue;
		}
		l->items[kept++] = l->items[i];
	}
	l->count = kept;
}

static int maildrop_list(const char *maildrop_path, struct maildrop_message **out, size_t *count)
{
	struct listing l = {0};
	struct maildrop_message *messages;
	char *new_dir = fs_path_printf("%s/new", maildrop_path);
	char *cur_dir = fs_path_printf("%s/cur", maildrop_path);
	int r;

	/* new/ before cur/: a file a reader moves new/ -> cur/ meanwhile is then still found. */
	r = list_directory(&l, new_dir, LISTED_NEW);
	if (r == 0)
		r = list_directory(&l, cur_dir, LISTED_CUR);
	if (r == 0)
		r = list_directory(&l, maildrop_path, LISTED_ROOT);
	free(new_dir);
	free(cur_dir);
	if (r < 0) {
		int saved = errno;

		listing_free(&l);
		errno = saved;
		return -1;
	}
	listing_drop_duplicate_uidls(&l);
	if (l.count > 1)
		qsort(l.items, l.count, sizeof(*l.items), compare_arrival);
	/* The oldest POP3_MAX_MESSAGES are served; the rest wait for a later session. */
	if (l.count > POP3_MAX_MESSAGES) {
		for (size_t i = POP3_MAX_MESSAGES; i < l.count; i++)
			free(l.items[i].msg.path);
		l.count = POP3_MAX_MESSAGES;
	}
	messages = xcalloc(l.count, sizeof(*messages));
	for (size_t i = 0; i < l.count; i++)
		messages[i] = l.items[i].msg;
	free(l.items);
	*out = messages;
	*count = l.count;
	return 0;
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

enum maildrop_open_status maildrop_open(struct maildrop *md, const char *maildrop_path)
{
	struct maildrop_message *messages;
	size_t count;
	char *lock_path;
	int lock_fd, r;

	if (maildir_create(maildrop_path) < 0) {
		log_warn("maildrop", "event=create_failed path=%s error=%s", maildrop_path,
			strerror(errno));
		return MAILDROP_OPEN_ERROR;
	}
	lock_path = fs_path_printf("%s/%s", maildrop_path, MAILDROP_LOCK_NAME);
	do
		lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (lock_fd < 0 && errno == EINTR);
	if (lock_fd < 0) {
		log_warn("maildrop", "event=lock_open_failed file=%s error=%s", lock_path,
			strerror(errno));
		free(lock_path);
		return MAILDROP_OPEN_ERROR;
	}
	/* flock locks belong to the open file description, so two sessions in this process
	 * exclude each other just as two processes do. */
	do
		r = flock(lock_fd, LOCK_EX | LOCK_NB);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		bool busy = errno == EWOULDBLOCK;

		if (!busy)
			log_warn("maildrop", "event=lock_failed file=%s error=%s", lock_path,
				strerror(errno));
		close(lock_fd);
		free(lock_path);
		return busy ? MAILDROP_OPEN_LOCKED : MAILDROP_OPEN_ERROR;
	}
	free(lock_path);
	maildrop_clean_tmp(maildrop_path, time(NULL));
	if (maildrop_list(maildrop_path, &messages, &count) < 0) {
		log_warn("maildrop", "event=list_failed path=%s error=%s", maildrop_path,
			strerror(errno));
		close(lock_fd);
		return MAILDROP_OPEN_ERROR;
	}
	md->path = xstrdup(maildrop_path);
	md->lock_fd = lock_fd;
	md->messages = messages;
	md->count = count;
	return MAILDROP_OPEN_OK;
}

/* Which of the three listed directories holds msg (by its path: "<md->path>/new/NAME",
 * "<md->path>/cur/NAME", anything else is the root). Bounded by the lengths, with memcmp and
 * memchr: a strchr after a strncmp-matched prefix made gcc's sanitizer builds (-O2
 * -fsanitize=address,undefined) take the prefix literal for the string and fail with
 * -Werror=stringop-overread. */
static enum listed_dir message_directory(const struct maildrop *md,
	const struct maildrop_message *msg)
{
	static const size_t sub_len = sizeof("/new/") - 1;
	size_t plen = strlen(md->path);
	size_t len = strlen(msg->path);
	const char *sub, *name;

	if (len <= plen + sub_len || memcmp(msg->path, md->path, plen) != 0)
		return LISTED_ROOT;
	sub = msg->path + plen;
	name = sub + sub_len;
	if (memchr(name, '/', len - plen - sub_len))
		return LISTED_ROOT;
	if (memcmp(sub, "/new/", sub_len) == 0)
		return LISTED_NEW;
	if (memcmp(sub, "/cur/", sub_len) == 0)
		return LISTED_CUR;
	return LISTED_ROOT;
}

static int compare_uidl_pointers(const void *pa, const void *pb)
{
	return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Called for each file found by find_moved_messages; returns true to end the search. */
typedef bool (*moved_message_fn)(DIR *dir, const char *dir_path, const char *name,
	enum listed_dir where, void *arg);

/* A Maildir message that is gone from where we listed it may have been renamed by another
 * reader (new/X -> cur/X:2,S, or new flags in cur/). It keeps its base name, hence its UIDL:
 * this finds it by that in one pass over cur/ (where such renames go) and one over new/, and
 * calls fn for each file whose UIDL is in uidls (sorted). Legacy "*.msg" files never move, and
 * a Maildir file may share their UIDL, so callers only look here for Maildir messages. */
static void find_moved_messages(const struct maildrop *md, const char *const *uidls, size_t n,
	moved_message_fn fn, void *arg)
{
	static const struct {
		const char *name;
		enum listed_dir where;
	} subdirs[] = {{"cur", LISTED_CUR}, {"new", LISTED_NEW}};

	for (size_t s = 0; s < sizeof(subdirs) / sizeof(subdirs[0]); s++) {
		char *dir_path = fs_path_printf("%s/%s", md->path, subdirs[s].name);
		DIR *dir = opendir(dir_path);
		struct dirent *de;
		bool stop = false;

		if (!dir) {
			free(dir_path);
			continue;
		}
		while (!stop && (de = readdir(dir)) != NULL) {
			char uidl[POP3_UIDL_MAX + 1];
			const char *key = uidl;

			if (de->d_name[0] == '.')
				continue;
			uidl_from_base(uidl, de->d_name, maildir_base_length(de->d_name));
			if (!bsearch(&key, uidls, n, sizeof(*uidls), compare_uidl_pointers))
				continue;
			stop = fn(dir, dir_path, de->d_name, subdirs[s].where, arg);
		}
		closedir(dir);
		free(dir_path);
		if (stop)
			return;
	}
}

struct unlink_moved {
	bool *touched; /* per enum listed_dir */
	int failures;
};

/* Deletes a moved message where it is now, so a message the user deleted does not come back. */
static bool unlink_moved_message(DIR *dir, const char *dir_path, const char *name,
	enum listed_dir where, void *arg)
{
	struct unlink_moved *u = arg;

	if (unlinkat(dirfd(dir), name, 0) == 0) {
		u->touched[where] = true;
	} else if (errno != ENOENT) {
		log_warn("maildrop", "event=unlink_failed file=%s/%s error=%s", dir_path, name,
			strerror(errno));
		u->failures++;
	}
	return false;
}

struct open_moved {
	int fd;
	int error; /* errno of the last failed open */
};

static bool open_moved_message(DIR *dir, const char *dir_path, const char *name,
	enum listed_dir where, void *arg)
{
	struct open_moved *o = arg;

	(void)dir_path;
	(void)where;
	o->fd = open_message_at(dirfd(dir), name);
	if (o->fd >= 0)
		return true;
	/* Renamed again between readdir and open: the next pass may still find it. */
	o->error = errno;
	return false;
}

int maildrop_message_open(const struct maildrop *md, const struct maildrop_message *m)
{
	const char *key = m->uidl;
	struct open_moved o = {-1, ENOENT};
	int fd = open_message_at(AT_FDCWD, m->path);

	if (fd >= 0 || errno != ENOENT || message_directory(md, m) == LISTED_ROOT)
		return fd;
	find_moved_messages(md, &key, 1, open_moved_message, &o);
	if (o.fd < 0)
		errno = o.error;
	return o.fd;
}

int maildrop_commit_deletions(struct maildrop *md)
{
	bool touched[3] = {false, false, false};
	const char **moved = NULL;
	size_t moved_count = 0;
	int failures = 0;

	for (size_t i = 0; i < md->count; i++) {
		struct maildrop_message *msg = &md->messages[i];
		enum listed_dir dir;

		if (!msg->deleted)
			continue;
		dir = message_directory(md, msg);
		if (unlink(msg->path) == 0) {
			touched[dir] = true;
			continue;
		}
		if (errno != ENOENT) {
			log_warn("maildrop", "event=unlink_failed file=%s error=%s", msg->path,
				strerror(errno));
			failures++;
			continue;
		}
		if (dir != LISTED_ROOT) {
			moved = xrealloc(moved, (moved_count + 1) * sizeof(*moved));
			moved[moved_count++] = msg->uidl;
		}
	}
	if (moved_count > 0) {
		struct unlink_moved u = {touched, 0};

		qsort(moved, moved_count, sizeof(*moved), compare_uidl_pointers);
		find_moved_messages(md, moved, moved_count, unlink_moved_message, &u);
		failures += u.failures;
		free(moved);
	}
	/* The unlinks are only durable once each directory is fsync'd; only then may POP3 UPDATE
	 * say +OK (RFC 1939 6). */
	for (int dir = LISTED_NEW; dir <= LISTED_ROOT; dir++) {
		char *dir_path;

		if (!touched[dir])
			continue;
		if (dir == LISTED_ROOT)
			dir_path = xstrdup(md->path);
		else
			dir_path = fs_path_printf("%s/%s", md->path, dir == LISTED_NEW ? "new" : "cur");
		if (fs_fsync_directory(dir_path) < 0) {
			log_warn("maildrop", "event=fsync_failed dir=%s error=%s", dir_path,
				strerror(errno));
			failures++;
		}
		free(dir_path);
	}
	return failures ? -1 : 0;
}

void maildrop_close(struct maildrop *md)
{
	for (size_t i = 0; i < md->count; i++)
		free(md->messages[i].path);
	free(md->messages);
	free(md->path);
	/* Closing the only descriptor of the lock file releases the flock. */
	if (md->lock_fd >= 0)
		close(md->lock_fd);
	md->messages = NULL;
	md->path = NULL;
	md->count = 0;
	md->lock_fd = -1;
}
