/* store/maildrop.c: reading the Maildir behind a MaildropPath for POP3: locked listing, unique
 * ids, opening and deletion of new/, cur/ and legacy "*.msg" files (writing new messages is
 * store/maildrop_delivery.c).
 * The Maildir layout and naming follow https://cr.yp.to/proto/maildir.html and Dovecot's
 * conventions, so Dovecot, mutt and friends can read the same directory. */
#include "store/maildrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
/* Read size when counting a legacy file's RETR size at maildrop_open. */
#define LEGACY_READ_CHUNK (16 * 1024)

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

enum maildrop_open_status maildrop_open(struct maildrop *md, const char *maildrop_path)
{
	struct maildrop_message *messages;
	size_t count;
	char *lock_path;
	int lock_fd, r;

	if (maildrop_create(maildrop_path) < 0) {
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
	 * exclude each other just as two processes do. The push engine holds the lock only for
	 * a batch's unlinks and a directory fsync: wait that out briefly before [IN-USE]. */
	for (unsigned waited = 0;; waited += MAILDROP_LOCK_RETRY_STEP_MILLISECONDS) {
		do
			r = flock(lock_fd, LOCK_EX | LOCK_NB);
		while (r < 0 && errno == EINTR);
		if (r == 0 || errno != EWOULDBLOCK || waited >= MAILDROP_LOCK_RETRY_MILLISECONDS)
			break;
		struct timespec step = {0, MAILDROP_LOCK_RETRY_STEP_MILLISECONDS * 1000000L};
		nanosleep(&step, NULL);
	}
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

int maildrop_commit_deletions(struct maildrop *md, const size_t *indexes, size_t count)
{
	bool touched[3] = {false, false, false};
	const char **moved = NULL;
	size_t moved_count = 0;
	int failures = 0;

	for (size_t i = 0; i < count; i++) {
		struct maildrop_message *msg;
		enum listed_dir dir;

		if (indexes[i] >= md->count)
			fatal("event=maildrop_deletion_out_of_range index=%zu count=%zu", indexes[i],
				md->count);
		msg = &md->messages[indexes[i]];
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
