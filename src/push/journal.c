/* push/journal.c: the maildrop as the push queue: the journal of attempts and outcomes, the
 * listing of what waits in arrival order, and the change a confirmed push makes to the
 * Maildir (removed, or renamed with the P flag). */
#include "push/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "fsutil.h"
#include "hex.h"
#include "log.h"
#include "strbuf.h"

#define MAILDROP_LOCK_NAME ".mailpopbox.lock"
#define LEGACY_SUFFIX ".msg"

struct journal_entry {
	char *key;
	enum push_journal_state state;
	bool live; /* seen waiting (or refused) by the last listing */
	struct journal_entry *next;
};

struct push_journal {
	char *path;       /* MaildropPath/.mailpopbox-push */
	char *tmp_path;   /* its compaction staging file */
	int fd;           /* open for appending; -1 when read-only */
	struct journal_entry **buckets;
	size_t bucket_count;
	size_t keys;
	size_t lines;     /* records in the file */
	size_t live;
	bool torn;        /* a failed append left part of a record that could not be cut */
};

/* FNV-1a: keys are file names we or a Maildir writer chose, not attacker-chosen at scale. */
static size_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static struct journal_entry *entry_find(const struct push_journal *j, const char *key)
{
	struct journal_entry *e = j->buckets[key_hash(key) % j->bucket_count];

	while (e && strcmp(e->key, key) != 0)
		e = e->next;
	return e;
}

static void table_grow(struct push_journal *j)
{
	size_t count = j->bucket_count * 2;
	struct journal_entry **buckets = xcalloc(count, sizeof(*buckets));

	for (size_t i = 0; i < j->bucket_count; i++) {
		struct journal_entry *e = j->buckets[i], *next;
		for (; e; e = next) {
			size_t b = key_hash(e->key) % count;
			next = e->next;
			e->next = buckets[b];
			buckets[b] = e;
		}
	}
	free(j->buckets);
	j->buckets = buckets;
	j->bucket_count = count;
}

static void entry_set(struct push_journal *j, const char *key, enum push_journal_state state)
{
	struct journal_entry *e = entry_find(j, key);

	if (!e) {
		if (j->keys >= j->bucket_count)
			table_grow(j);
		size_t b = key_hash(key) % j->bucket_count;
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->next = j->buckets[b];
		j->buckets[b] = e;
		j->keys++;
	}
	e->state = state;
}

static void table_free(struct push_journal *j)
{
	for (size_t i = 0; i < j->bucket_count; i++) {
		struct journal_entry *e = j->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
	}
	free(j->buckets);
	j->buckets = NULL;
	j->keys = 0;
}

static char state_letter(enum push_journal_state state)
{
	switch (state) {
	case PUSH_JOURNAL_ATTEMPT:
		return 'A';
	case PUSH_JOURNAL_CONFIRMED:
		return 'C';
	case PUSH_JOURNAL_REFUSED:
		return 'R';
	case PUSH_JOURNAL_NONE:
		break;
	}
	return 'N';
}

/* A record is "<letter> <key>\n"; a key's octets outside 0x21..0x7E and '%' are written %XX,
 * so any file name fits on one line. */
static void append_record(struct strbuf *out, const char *key, enum push_journal_state state)
{
	static const char hex[] = "0123456789ABCDEF";

	strbuf_appendf(out, "%c ", state_letter(state));
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if (*p < 0x21 || *p > 0x7e || *p == '%') {
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			strbuf_append(out, esc, 3);
		} else {
			strbuf_append(out, p, 1);
		}
	}
	strbuf_append(out, "\n", 1);
}

/* Parses one record (line without its '\n'); false for anything else, which is skipped. */
static bool parse_record(const char *line, size_t len, char *key, size_t keysz,
	enum push_journal_state *state)
{
	size_t k = 0;

	if (len < 3 || line[1] != ' ')
		return false;
	switch (line[0]) {
	case 'A':
		*state = PUSH_JOURNAL_ATTEMPT;
		break;
	case 'C':
		*state = PUSH_JOURNAL_CONFIRMED;
		break;
	case 'R':
		*state = PUSH_JOURNAL_REFUSED;
		break;
	case 'N':
		*state = PUSH_JOURNAL_NONE;
		break;
	default:
		return false;
	}
	for (size_t i = 2; i < len; i++) {
		char c = line[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len || (hi = hex_value(line[i + 1])) < 0 ||
			    (lo = hex_value(line[i + 2])) < 0)
				return false;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
			/* Written escaped: a space or control here is two records glued together
			 * (an append after a torn line), not a key. */
			return false;
		}
		if (c == '\0' || k + 1 >= keysz)
			return false;
		key[k++] = c;
	}
	key[k] = '\0';
	return true;
}

/* Reads every record; *torn tells whether the file ended inside a line. */
static int journal_read(struct push_journal *j, bool *torn)
{
	char buf[16384];
	char line[PUSH_JOURNAL_LINE_MAX + 1];
	char key[PUSH_JOURNAL_LINE_MAX + 1];
	size_t line_len = 0;
	bool overlong = false;
	int fd;

	*torn = false;
	do
		fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			enum push_journal_state state;
			if (buf[i] != '\n') {
				if (line_len < PUSH_JOURNAL_LINE_MAX)
					line[line_len++] = buf[i];
				else
					overlong = true;
				continue;
			}
			j->lines++;
			if (!overlong && parse_record(line, line_len, key, sizeof(key), &state))
				entry_set(j, key, state);
			line_len = 0;
			overlong = false;
		}
	}
	close(fd);
	*torn = line_len > 0 || overlong;
	return 0;
}

static int open_for_append(struct push_journal *j)
{
	do
		j->fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	while (j->fd < 0 && errno == EINTR);
	if (j->fd >= 0 || errno != ENOENT)
		return j->fd < 0 ? -1 : 0;
	do
		j->fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (j->fd < 0 && errno == EINTR);
	if (j->fd < 0)
		return -1;
	/* A new file: its name must be durable too, or after a power cut the fdatasync'd
	 * attempts would be in a file no directory names, and a restart would send again what
	 * it cannot know was sent. */
	char *dir = xstrndup(j->path, (size_t)(strrchr(j->path, '/') - j->path));
	int r = fs_fsync_directory(dir);
	int saved = errno;
	free(dir);
	if (r < 0) {
		close(j->fd);
		j->fd = -1;
		errno = saved;
		return -1;
	}
	return 0;
}

/* Writes the entries (only the live ones with only_live) to the staging file and renames it
 * over the journal; the append descriptor then follows the new file. */
static int journal_rewrite(struct push_journal *j, bool only_live)
{
	struct strbuf out;
	size_t lines = 0;
	bool renamed = false;
	int r;

	strbuf_init(&out);
	for (size_t i = 0; i < j->bucket_count; i++)
		for (struct journal_entry *e = j->buckets[i]; e; e = e->next) {
			if ((only_live && !e->live) || e->state == PUSH_JOURNAL_NONE)
				continue;
			append_record(&out, e->key, e->state);
			lines++;
		}
	/* A staging file left by a crash mid-compaction is ours and stale. */
	if (unlink(j->tmp_path) < 0 && errno != ENOENT) {
		strbuf_free(&out);
		return -1;
	}
	r = fs_durable_write_file(j->tmp_path, j->path, out.data ? out.data : "", out.len,
		&renamed);
	strbuf_free(&out);
	if (r < 0 && !renamed)
		return -1;
	/* Renamed (even if the directory fsync failed): the old file is gone from the name. */
	if (only_live) {
		for (size_t i = 0; i < j->bucket_count; i++) {
			struct journal_entry **pe = &j->buckets[i];
			while (*pe) {
				struct journal_entry *e = *pe;
				if (e->live) {
					pe = &e->next;
					continue;
				}
				*pe = e->next;
				free(e->key);
				free(e);
				j->keys--;
			}
		}
	}
	j->lines = lines;
	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
		if (open_for_append(j) < 0)
			return -1;
	}
	return r;
}

struct push_journal *push_journal_open(const char *maildrop_path, bool writable, char *err,
	size_t errsz)
{
	struct push_journal *j = xcalloc(1, sizeof(*j));
	bool torn = false;

	j->path = fs_path_printf("%s/%s", maildrop_path, PUSH_JOURNAL_NAME);
	j->tmp_path = fs_path_printf("%s/%s.tmp", maildrop_path, PUSH_JOURNAL_NAME);
	j->fd = -1;
	j->bucket_count = 64;
	j->buckets = xcalloc(j->bucket_count, sizeof(*j->buckets));
	if (journal_read(j, &torn) < 0) {
		snprintf(err, errsz, "cannot read %s: %s", j->path, strerror(errno));
		push_journal_close(j);
		return NULL;
	}
	if (!writable)
		return j;
	if (open_for_append(j) < 0) {
		snprintf(err, errsz, "cannot open %s: %s", j->path, strerror(errno));
		push_journal_close(j);
		return NULL;
	}
	/* A crash mid-write left half a line; appending after it would glue two records. */
	if (torn && journal_rewrite(j, false) < 0) {
		snprintf(err, errsz, "cannot rewrite %s: %s", j->path, strerror(errno));
		push_journal_close(j);
		return NULL;
	}
	return j;
}

void push_journal_close(struct push_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	table_free(j);
	free(j->path);
	free(j->tmp_path);
	free(j);
}

enum push_journal_state push_journal_state(const struct push_journal *j, const char *key)
{
	const struct journal_entry *e = entry_find(j, key);

	return e ? e->state : PUSH_JOURNAL_NONE;
}

int push_journal_record(struct push_journal *j, const char *key, enum push_journal_state state)
{
	struct strbuf line;
	int r;

	if (j->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (j->torn) {
		if (journal_rewrite(j, false) < 0)
			return -1;
		j->torn = false;
	}
	strbuf_init(&line);
	append_record(&line, key, state);
	/* Where this record starts: a write that fails halfway (a full disk) is cut back to it,
	 * or the next record would be glued to the half line and lost with it. */
	off_t end = lseek(j->fd, 0, SEEK_END);
	r = end < 0 ? -1 : fs_write_all(j->fd, line.data, line.len);
	strbuf_free(&line);
	if (r < 0) {
		int saved = errno;
		/* Cannot cut it: the file is written anew from the table before the next
		 * record. */
		if (end < 0 || ftruncate(j->fd, end) < 0)
			j->torn = true;
		errno = saved;
		return -1;
	}
	j->lines++;
	entry_set(j, key, state);
	/* A key recorded now is one the engine is working on: never compacted away before the
	 * next listing looks at it. */
	entry_find(j, key)->live = true;
	return 0;
}

int push_journal_sync(struct push_journal *j)
{
	int r;

	if (j->fd < 0) {
		errno = EBADF;
		return -1;
	}
	do
		r = fdatasync(j->fd);
	while (r < 0 && errno == EINTR);
	return r;
}

bool push_journal_moved(const struct push_journal *j)
{
	struct stat named, open_file;

	if (j->fd < 0)
		return false;
	if (stat(j->path, &named) < 0 || fstat(j->fd, &open_file) < 0)
		return true;
	return named.st_dev != open_file.st_dev || named.st_ino != open_file.st_ino;
}

size_t push_journal_lines(const struct push_journal *j)
{
	return j->lines;
}

size_t push_journal_keys(const struct push_journal *j)
{
	return j->keys;
}

int push_journal_compact(struct push_journal *j, bool force)
{
	size_t live = 0;

	if (j->fd < 0) {
		errno = EBADF;
		return -1;
	}
	for (size_t i = 0; i < j->bucket_count; i++)
		for (struct journal_entry *e = j->buckets[i]; e; e = e->next)
			live += e->live;
	if (!force && (j->lines <= PUSH_JOURNAL_COMPACT_LINES || j->lines <= 2 * live))
		return 0;
	return journal_rewrite(j, true);
}

static void journal_clear_live(struct push_journal *j)
{
	for (size_t i = 0; i < j->bucket_count; i++)
		for (struct journal_entry *e = j->buckets[i]; e; e = e->next)
			e->live = false;
}

/* ---- listing ---- */

const char *push_maildir_flags(const char *name)
{
	const char *info = strrchr(name, ':');

	if (!info || strncmp(info, ":2,", 3) != 0)
		return "";
	return info + 3;
}

/* The journal key of a file name: its unique part, after the Junk prefix for a Junk
 * message. */
static char *name_key(const char *name, bool junk)
{
	const char *colon = strchr(name, ':');
	size_t len = colon ? (size_t)(colon - name) : strlen(name);

	return fs_path_printf("%s%.*s", junk ? PUSH_JUNK_KEY_PREFIX : "", (int)len, name);
}

/* The folder a message lives in: MaildropPath itself (INBOX) or MaildropPath/.Junk. */
static char *folder_path(const char *maildrop_path, bool junk)
{
	return junk ? fs_path_printf("%s/%s", maildrop_path, PUSH_JUNK_FOLDER) :
		xstrdup(maildrop_path);
}

/* The Maildir unique part of a key (the key without its folder's prefix). */
static const char *key_unique(const char *key, bool junk)
{
	size_t prefix = sizeof(PUSH_JUNK_KEY_PREFIX) - 1;

	return junk && strncmp(key, PUSH_JUNK_KEY_PREFIX, prefix) == 0 ? key + prefix : key;
}

static bool is_legacy_name(const char *name)
{
	size_t len = strlen(name), suffix = sizeof(LEGACY_SUFFIX) - 1;

	return len > suffix && strcmp(name + len - suffix, LEGACY_SUFFIX) == 0;
}

/* The oldest `max` messages seen so far, as a max-heap on arrival (the root is the newest
 * kept): a maildrop of any size is listed in memory bounded by max, in n log max time. */
struct pending_array {
	struct push_pending *items;
	size_t count, cap, max;
	size_t seen; /* every message listed, kept or not */
};

static int compare_arrival(const void *pa, const void *pb);
static void pending_free(struct push_pending *p);

static void heap_swap(struct push_pending *a, struct push_pending *b)
{
	struct push_pending t = *a;

	*a = *b;
	*b = t;
}

static void heap_sift_down(struct pending_array *a, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, top = i;
		if (l < a->count && compare_arrival(&a->items[l], &a->items[top]) > 0)
			top = l;
		if (r < a->count && compare_arrival(&a->items[r], &a->items[top]) > 0)
			top = r;
		if (top == i)
			return;
		heap_swap(&a->items[i], &a->items[top]);
		i = top;
	}
}

/* Takes p (its strings are then the array's, or freed). */
static void pending_keep(struct pending_array *a, struct push_pending *p)
{
	a->seen++;
	if (a->count < a->max) {
		if (a->count == a->cap) {
			a->cap = a->cap ? a->cap * 2 : 64;
			if (a->cap > a->max)
				a->cap = a->max;
			a->items = xrealloc(a->items, a->cap * sizeof(*a->items));
		}
		size_t i = a->count++;
		a->items[i] = *p;
		while (i > 0 && compare_arrival(&a->items[(i - 1) / 2], &a->items[i]) < 0) {
			heap_swap(&a->items[(i - 1) / 2], &a->items[i]);
			i = (i - 1) / 2;
		}
		return;
	}
	if (a->count > 0 && compare_arrival(p, &a->items[0]) < 0) {
		pending_free(&a->items[0]);
		a->items[0] = *p;
		heap_sift_down(a, 0);
		return;
	}
	pending_free(p);
}

/* sub: "new", "cur", or the Junk folder's (junk set). */
static int list_subdir(const char *maildrop_path, const char *sub, bool junk,
	struct push_journal *j, bool include_refused, struct pending_array *a, size_t *refused)
{
	char *dir_path = fs_path_printf("%s/%s", maildrop_path, sub);
	DIR *dir = opendir(dir_path);
	struct dirent *de;
	int saved = 0;

	if (!dir) {
		saved = errno;
		free(dir_path);
		errno = saved;
		return saved == ENOENT ? 0 : -1;
	}
	for (;;) {
		struct stat st;
		enum push_journal_state state = PUSH_JOURNAL_NONE;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			saved = errno;
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		/* Marked pushed (KeepCopy): done. */
		if (strchr(push_maildir_flags(de->d_name), 'P'))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* moved to cur/ (listed there) or removed by POP3 */
			saved = errno;
			break;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		char *key = name_key(de->d_name, junk);
		if (j) {
			struct journal_entry *e = entry_find(j, key);
			if (e) {
				state = e->state;
				e->live = true;
			}
		}
		if (state == PUSH_JOURNAL_REFUSED) {
			(*refused)++;
			if (!include_refused) {
				free(key);
				continue;
			}
		}
		struct push_pending p = {
			.path = fs_path_printf("%s/%s", dir_path, de->d_name),
			.key = key,
			.junk = junk,
			.size = (uint64_t)st.st_size,
			.mtime = st.st_mtim,
			.state = state,
		};
		pending_keep(a, &p);
	}
	closedir(dir);
	free(dir_path);
	errno = saved;
	return saved ? -1 : 0;
}

static size_t count_legacy(const char *maildrop_path)
{
	DIR *dir = opendir(maildrop_path);
	struct dirent *de;
	size_t n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.' && is_legacy_name(de->d_name))
			n++;
	closedir(dir);
	return n;
}

static int compare_arrival(const void *pa, const void *pb)
{
	const struct push_pending *a = pa, *b = pb;

	if (a->mtime.tv_sec != b->mtime.tv_sec)
		return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
	if (a->mtime.tv_nsec != b->mtime.tv_nsec)
		return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
	/* Digit runs by value (as store/maildrop.c orders POP3's listing): deliveries sharing an
	 * mtime keep the order of their seconds, microseconds and counter. */
	int c = strverscmp(a->key, b->key);
	return c ? c : strcmp(a->path, b->path);
}

static int compare_key_then_arrival(const void *pa, const void *pb)
{
	const struct push_pending *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);

	return c ? c : compare_arrival(pa, pb);
}

static void pending_free(struct push_pending *p)
{
	free(p->path);
	free(p->key);
}

int push_pending_list(const char *maildrop_path, struct push_journal *j, size_t max,
	bool include_refused, struct push_listing *out)
{
	struct pending_array a = {.max = max};
	size_t refused = 0, kept = 0;

	if (j)
		journal_clear_live(j);
	/* new/ before cur/: a file a reader moves new/ -> cur/ meanwhile is still found. A
	 * missing folder (no Junk yet) lists nothing. */
	if (list_subdir(maildrop_path, "new", false, j, include_refused, &a, &refused) < 0 ||
	    list_subdir(maildrop_path, "cur", false, j, include_refused, &a, &refused) < 0 ||
	    list_subdir(maildrop_path, PUSH_JUNK_FOLDER "/new", true, j, include_refused, &a,
		&refused) < 0 ||
	    list_subdir(maildrop_path, PUSH_JUNK_FOLDER "/cur", true, j, include_refused, &a,
		&refused) < 0) {
		int saved = errno;
		for (size_t i = 0; i < a.count; i++)
			pending_free(&a.items[i]);
		free(a.items);
		errno = saved;
		return -1;
	}
	/* Seen in both new/ and cur/ (renamed while we listed): once, the earliest. */
	if (a.count > 1)
		qsort(a.items, a.count, sizeof(*a.items), compare_key_then_arrival);
	for (size_t i = 0; i < a.count; i++) {
		if (kept > 0 && strcmp(a.items[kept - 1].key, a.items[i].key) == 0) {
			pending_free(&a.items[i]);
			continue;
		}
		a.items[kept++] = a.items[i];
	}
	a.count = kept;
	if (a.count > 1)
		qsort(a.items, a.count, sizeof(*a.items), compare_arrival);
	memset(out, 0, sizeof(*out));
	/* A message seen in both new/ and cur/ beyond the max counts twice here (rare: a rename
	 * while we listed; the count is a hint for the status). */
	out->left_out = a.seen > a.max ? a.seen - a.max : 0;
	out->items = a.items;
	out->count = a.count;
	out->refused = refused;
	out->legacy = count_legacy(maildrop_path);
	return 0;
}

void push_listing_free(struct push_listing *l)
{
	for (size_t i = 0; i < l->count; i++)
		pending_free(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* ---- the maildrop change after a confirmed push ---- */

int push_maildrop_trylock(const char *maildrop_path)
{
	char *lock_path = fs_path_printf("%s/%s", maildrop_path, MAILDROP_LOCK_NAME);
	int fd, r;

	do
		fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (fd < 0 && errno == EINTR);
	free(lock_path);
	if (fd < 0)
		return -1;
	do
		r = flock(fd, LOCK_EX | LOCK_NB);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return saved == EWOULDBLOCK ? -2 : -1;
	}
	return fd;
}

/* Where the file with this unique name is now in its folder (another Maildir reader may have
 * renamed it), newly allocated, or NULL. */
static char *find_by_key(const char *folder, const char *key)
{
	static const char *const subs[] = {"cur", "new"};
	size_t key_len = strlen(key);

	for (size_t s = 0; s < 2; s++) {
		char *dir_path = fs_path_printf("%s/%s", folder, subs[s]);
		DIR *dir = opendir(dir_path);
		struct dirent *de;
		char *found = NULL;

		if (dir) {
			while (!found && (de = readdir(dir)) != NULL)
				if (strncmp(de->d_name, key, key_len) == 0 &&
				    (de->d_name[key_len] == '\0' || de->d_name[key_len] == ':'))
					found = fs_path_printf("%s/%s", dir_path, de->d_name);
			closedir(dir);
		}
		free(dir_path);
		if (found)
			return found;
	}
	return NULL;
}

/* Maildir flags are kept in ASCII order (cr.yp.to/proto/maildir.html). */
static void flags_with_passed(const char *flags, char *out, size_t outsz)
{
	size_t n = 0;
	bool placed = false;

	for (const char *f = flags; *f && n + 2 < outsz; f++) {
		if (*f == 'P')
			continue;
		if (!placed && *f > 'P') {
			out[n++] = 'P';
			placed = true;
		}
		out[n++] = *f;
	}
	if (!placed && n + 1 < outsz)
		out[n++] = 'P';
	out[n] = '\0';
}

/* folder: MaildropPath or its Junk folder; key: the Maildir unique part. */
static int finalise_at(const char *folder, const char *path, const char *key, bool keep_copy)
{
	if (!keep_copy)
		return unlink(path);
	const char *name = strrchr(path, '/');
	char flags[64];
	flags_with_passed(push_maildir_flags(name ? name + 1 : path), flags, sizeof(flags));
	char *target = fs_path_printf("%s/cur/%s:2,%s", folder, key, flags);
	int r = rename(path, target);
	int saved = errno;
	free(target);
	errno = saved;
	return r;
}

int push_maildrop_finalise(const char *maildrop_path, const struct push_pending *p,
	bool keep_copy)
{
	char *folder = folder_path(maildrop_path, p->junk);
	const char *unique = key_unique(p->key, p->junk);
	char *now = NULL;
	int r = finalise_at(folder, p->path, unique, keep_copy), saved;

	if (r == 0 || errno != ENOENT)
		goto out;
	r = 0;
	now = find_by_key(folder, unique);
	/* Removed meanwhile (POP3 DELE, the owner's mail client): nothing left to do. */
	if (!now || (keep_copy && strchr(push_maildir_flags(now), 'P')))
		goto out;
	r = finalise_at(folder, now, unique, keep_copy);
	if (r < 0 && errno == ENOENT)
		r = 0;
out:
	saved = errno;
	free(now);
	free(folder);
	errno = saved;
	return r;
}

static int sync_folder(const char *folder)
{
	char *new_dir = fs_path_printf("%s/new", folder);
	char *cur_dir = fs_path_printf("%s/cur", folder);
	int r = fs_fsync_directory(new_dir);

	if (r == 0)
		r = fs_fsync_directory(cur_dir);
	int saved = errno;
	free(new_dir);
	free(cur_dir);
	errno = saved;
	return r;
}

int push_maildrop_sync(const char *maildrop_path, bool inbox, bool junk)
{
	int r = inbox ? sync_folder(maildrop_path) : 0;

	if (r == 0 && junk) {
		char *folder = folder_path(maildrop_path, true);
		r = sync_folder(folder);
		/* Removed whole meanwhile (the owner emptied it): nothing to make durable. */
		if (r < 0 && errno == ENOENT)
			r = 0;
		int saved = errno;
		free(folder);
		errno = saved;
	}
	return r;
}
