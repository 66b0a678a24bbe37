/* queue/spool.c: the outbound queue on disk: message files in msg/, JSON envelopes in env/,
 * staging in tmp/, each change made durable with the maildrop's discipline (write a tmp file,
 * fsync it, rename it into place, fsync the directory). See spool.h for the layout. */
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

#include <jansson.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"

/* Envelope saves may run on several worker threads; the counter keeps their tmp names apart. */
static atomic_ulong envelope_counter;

static const char *const state_names[] = {
	[SPOOL_RCPT_PENDING] = "PENDING",
	[SPOOL_RCPT_DELIVERED] = "DELIVERED",
	[SPOOL_RCPT_FAILED] = "FAILED",
	[SPOOL_RCPT_EXPIRED] = "EXPIRED",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- UTF-8 (JSON strings must be UTF-8, RFC 8259 8.1) ---- */

/* Octets in the well-formed UTF-8 sequence at s (RFC 3629 4: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 if it is not one. */
static size_t utf8_sequence_length(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
		(cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_sequence_length(p);

		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

/* A copy of s with each octet that is not part of well-formed UTF-8 replaced by '?'. */
static char *utf8_sanitized(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(strlen(s) + 1), *o = out;

	while (*p) {
		size_t n = utf8_sequence_length(p);

		if (n == 0) {
			*o++ = '?';
			p++;
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	*o = '\0';
	return out;
}

/* ---- entries in memory ---- */

bool spool_id_valid(const char *id)
{
	size_t len = strlen(id);

	/* A leading dot would hide it (and make "." and ".." possible). */
	if (len == 0 || len > SPOOL_ID_MAX || id[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void spool_set_string(char **field, const char *value)
{
	char *copy = value ? xstrdup(value) : NULL;

	free(*field);
	*field = copy;
}

/* The domain after the last '@' (a quoted local-part may hold '@' too), "" if none. */
static const char *address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

void spool_entry_init(struct spool_entry *e, const char *id, const char *sender, int64_t now)
{
	memset(e, 0, sizeof(*e));
	e->id = xstrdup(id);
	e->created = now;
	e->sender = xstrdup(sender);
	e->sender_domain = xstrdup(address_domain(sender));
	e->ret = SPOOL_RET_ABSENT;
	e->next_attempt = now;
}

struct spool_recipient *spool_entry_add_recipient(struct spool_entry *e, const char *address,
	const char *orcpt, unsigned notify)
{
	struct spool_recipient *r;

	e->recipients = xrealloc(e->recipients, (e->recipient_count + 1) * sizeof(*e->recipients));
	r = &e->recipients[e->recipient_count++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	r->state = SPOOL_RCPT_PENDING;
	return r;
}

static void recipient_free(struct spool_recipient *r)
{
	free(r->address);
	free(r->orcpt);
	free(r->last_error);
	free(r->status);
	free(r->remote_mta);
}

void spool_entry_free(struct spool_entry *e)
{
	for (size_t i = 0; i < e->recipient_count; i++)
		recipient_free(&e->recipients[i]);
	free(e->recipients);
	free(e->id);
	free(e->sender);
	free(e->sender_domain);
	free(e->envid);
	memset(e, 0, sizeof(*e));
}

bool spool_notify_wants(const struct spool_recipient *r, unsigned kind)
{
	/* RFC 3461 4.1: NEVER "MUST NOT" be combined with the others; if a peer did, NEVER is the
	 * safe reading (no mail to someone who asked for none). */
	if (r->notify & SPOOL_NOTIFY_NEVER)
		return false;
	if (r->notify == 0)
		return kind == SPOOL_NOTIFY_FAILURE;
	return (r->notify & kind) != 0;
}

const char *spool_state_name(enum spool_recipient_state state)
{
	if ((size_t)state < ARRAY_SIZE(state_names) && state_names[state])
		return state_names[state];
	return "UNKNOWN";
}

char *spool_message_path(const char *spool_path, const char *id)
{
	return fs_path_printf("%s/msg/%s", spool_path, id);
}

/* ---- the envelope as JSON ---- */

static json_t *json_string_or_null(const char *s)
{
	json_t *v;

	if (!s)
		return json_null();
	v = json_string(s);
	if (!v)
		fatal("event=json_string_failed");
	return v;
}

/* Remote text may be any octets; it is kept readable rather than refused. */
static json_t *json_text_or_null(const char *s)
{
	json_t *v;
	char *clean;

	if (!s)
		return json_null();
	clean = utf8_sanitized(s);
	v = json_string_or_null(clean);
	free(clean);
	return v;
}

static json_t *json_time_or_null(int64_t t)
{
	return t ? json_integer((json_int_t)t) : json_null();
}

static void set(json_t *obj, const char *key, json_t *value)
{
	if (!value || json_object_set_new(obj, key, value) < 0)
		fatal("event=json_build_failed key=%s", key);
}

static json_t *ret_to_json(enum spool_ret ret)
{
	const char *name = dsn_ret_name((enum dsn_ret)ret);

	return name ? json_string(name) : json_null();
}

static json_t *notify_to_json(unsigned notify)
{
	json_t *a;

	if (notify == 0)
		return json_null();
	a = json_array();
	for (unsigned bit = 1; bit & DSN_NOTIFY_ALL; bit <<= 1)
		if (notify & bit)
			json_array_append_new(a, json_string(dsn_notify_name(bit)));
	return a;
}

static json_t *recipient_to_json(const struct spool_recipient *r)
{
	json_t *o = json_object();

	set(o, "address", json_string_or_null(r->address));
	set(o, "orcpt", json_string_or_null(r->orcpt));
	set(o, "notify", notify_to_json(r->notify));
	set(o, "state", json_string(spool_state_name(r->state)));
	set(o, "reported", json_boolean(r->reported));
	set(o, "delay_reported", json_boolean(r->delay_reported));
	set(o, "remote_dsn", json_boolean(r->remote_dsn));
	set(o, "last_error", json_text_or_null(r->last_error));
	set(o, "status", json_text_or_null(r->status));
	set(o, "remote_mta", json_text_or_null(r->remote_mta));
	set(o, "last_attempt", json_time_or_null(r->last_attempt));
	return o;
}

/* Fields that identify people and messages are stored exactly or not at all. */
static bool entry_storable(const struct spool_entry *e)
{
	if (!e->id || !spool_id_valid(e->id) || !e->sender || !utf8_valid(e->sender) ||
		(e->sender_domain && !utf8_valid(e->sender_domain)) ||
		(e->envid && !utf8_valid(e->envid)) || e->size > INT64_MAX ||
		(size_t)e->ret > SPOOL_RET_HDRS)
		return false;
	for (size_t i = 0; i < e->recipient_count; i++) {
		const struct spool_recipient *r = &e->recipients[i];

		if (!r->address || !utf8_valid(r->address) || (r->orcpt && !utf8_valid(r->orcpt)) ||
			(size_t)r->state >= ARRAY_SIZE(state_names) ||
			(r->notify & ~(unsigned)DSN_NOTIFY_ALL))
			return false;
	}
	return true;
}

/* The envelope file's text (caller frees), or NULL with errno EINVAL. */
static char *envelope_serialize(const struct spool_entry *e)
{
	json_t *root, *rcpts;
	char *text, *with_newline;
	size_t len;

	if (!entry_storable(e)) {
		errno = EINVAL;
		return NULL;
	}
	root = json_object();
	set(root, "version", json_integer(SPOOL_ENVELOPE_VERSION));
	set(root, "id", json_string_or_null(e->id));
	set(root, "created", json_integer((json_int_t)e->created));
	set(root, "sender", json_string_or_null(e->sender));
	set(root, "sender_domain",
		json_string_or_null(e->sender_domain ? e->sender_domain : address_domain(e->sender)));
	set(root, "ret", ret_to_json(e->ret));
	set(root, "envid", json_string_or_null(e->envid));
	set(root, "size", json_integer((json_int_t)e->size));
	set(root, "body_8bit", json_boolean(e->body_8bit));
	set(root, "smtputf8", json_boolean(e->smtputf8));
	set(root, "attempts", json_integer((json_int_t)e->attempts));
	set(root, "next_attempt", json_integer((json_int_t)e->next_attempt));
	set(root, "last_attempt", json_time_or_null(e->last_attempt));
	rcpts = json_array();
	for (size_t i = 0; i < e->recipient_count; i++)
		if (json_array_append_new(rcpts, recipient_to_json(&e->recipients[i])) < 0)
			fatal("event=json_build_failed key=recipients");
	set(root, "recipients", rcpts);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		fatal("event=json_dump_failed id=%s", e->id);
	/* A final newline so the file reads well with cat and diff. */
	len = strlen(text);
	with_newline = xmalloc(len + 2);
	memcpy(with_newline, text, len);
	with_newline[len] = '\n';
	with_newline[len + 1] = '\0';
	free(text);
	return with_newline;
}

/* Reading an envelope: the first problem found is reported as "FILE: WHERE: WHAT". */
struct envelope_reader {
	const char *file;
	char *err;
	size_t errsz;
	bool failed;
};

static void reader_fail(struct envelope_reader *rd, const char *where, const char *what)
{
	if (rd->failed)
		return;
	rd->failed = true;
	snprintf(rd->err, rd->errsz, "%s: %s: %s", rd->file, where, what);
}

/* A JSON value of the wanted kind at key, or NULL (after reader_fail, unless nullable and
 * null). */
static json_t *read_member(struct envelope_reader *rd, json_t *obj, const char *where,
	const char *key, json_type type, bool nullable)
{
	char place[96];
	json_t *v = json_object_get(obj, key);

	snprintf(place, sizeof(place), "%s%s", where, key);
	if (!v) {
		reader_fail(rd, place, "missing");
		return NULL;
	}
	if (json_is_null(v)) {
		if (!nullable)
			reader_fail(rd, place, "must not be null");
		return NULL;
	}
	/* true and false are two json types; booleans are asked for as JSON_TRUE. */
	if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v))) {
		reader_fail(rd, place, "wrong type");
		return NULL;
	}
	return v;
}

static char *read_string(struct envelope_reader *rd, json_t *obj, const char *where,
	const char *key, bool nullable)
{
	json_t *v = read_member(rd, obj, where, key, JSON_STRING, nullable);

	return v ? xstrdup(json_string_value(v)) : NULL;
}

static bool read_bool(struct envelope_reader *rd, json_t *obj, const char *where, const char *key)
{
	json_t *v = read_member(rd, obj, where, key, JSON_TRUE, false);

	return v && json_is_true(v);
}

static long long read_integer(struct envelope_reader *rd, json_t *obj, const char *where,
	const char *key, bool nullable, long long max)
{
	json_t *v = read_member(rd, obj, where, key, JSON_INTEGER, nullable);
	long long n;

	if (!v)
		return 0;
	n = json_integer_value(v);
	if (n < 0 || n > max) {
		char place[96];

		snprintf(place, sizeof(place), "%s%s", where, key);
		reader_fail(rd, place, "out of range");
		return 0;
	}
	return n;
}

static unsigned read_notify(struct envelope_reader *rd, json_t *obj, const char *where)
{
	json_t *a = read_member(rd, obj, where, "notify", JSON_ARRAY, true);
	char place[96];
	unsigned notify = 0;
	size_t i;
	json_t *v;

	if (!a)
		return 0;
	snprintf(place, sizeof(place), "%snotify", where);
	/* Absent is written as null, so an empty list is not something we wrote. */
	if (json_array_size(a) == 0)
		reader_fail(rd, place, "empty");
	json_array_foreach(a, i, v) {
		unsigned bit = json_is_string(v) ? dsn_notify_bit(json_string_value(v)) : 0;

		if (!bit) {
			reader_fail(rd, place, "unknown keyword");
			return 0;
		}
		notify |= bit;
	}
	return notify;
}

static void read_recipient(struct envelope_reader *rd, json_t *o, size_t index,
	struct spool_recipient *r)
{
	char where[48];
	char *state;
	size_t k;

	snprintf(where, sizeof(where), "recipients[%zu]", index);
	if (!json_is_object(o)) {
		reader_fail(rd, where, "not an object");
		return;
	}
	strcat(where, ".");
	r->address = read_string(rd, o, where, "address", false);
	r->orcpt = read_string(rd, o, where, "orcpt", true);
	r->notify = read_notify(rd, o, where);
	state = read_string(rd, o, where, "state", false);
	for (k = 0; state && k < ARRAY_SIZE(state_names); k++)
		if (strcmp(state, state_names[k]) == 0)
			break;
	if (state && k == ARRAY_SIZE(state_names)) {
		char place[64];

		snprintf(place, sizeof(place), "%sstate", where);
		reader_fail(rd, place, "unknown state");
	}
	r->state = state && k < ARRAY_SIZE(state_names) ? (enum spool_recipient_state)k
		: SPOOL_RCPT_PENDING;
	free(state);
	r->reported = read_bool(rd, o, where, "reported");
	r->delay_reported = read_bool(rd, o, where, "delay_reported");
	r->remote_dsn = read_bool(rd, o, where, "remote_dsn");
	r->last_error = read_string(rd, o, where, "last_error", true);
	r->status = read_string(rd, o, where, "status", true);
	r->remote_mta = read_string(rd, o, where, "remote_mta", true);
	r->last_attempt = read_integer(rd, o, where, "last_attempt", true, INT64_MAX);
}

static void envelope_from_json(struct envelope_reader *rd, json_t *root, const char *id,
	struct spool_entry *e)
{
	json_t *rcpts, *v;
	char *ret;
	size_t i;

	if (!json_is_object(root)) {
		reader_fail(rd, "top level", "not an object");
		return;
	}
	if (read_integer(rd, root, "", "version", false, SPOOL_ENVELOPE_VERSION) !=
		SPOOL_ENVELOPE_VERSION && !rd->failed)
		reader_fail(rd, "version", "unsupported");
	e->id = read_string(rd, root, "", "id", false);
	/* A copied or renamed file must not make two entries share one message. */
	if (e->id && strcmp(e->id, id) != 0)
		reader_fail(rd, "id", "does not match the file name");
	e->created = read_integer(rd, root, "", "created", false, INT64_MAX);
	e->sender = read_string(rd, root, "", "sender", false);
	e->sender_domain = read_string(rd, root, "", "sender_domain", false);
	ret = read_string(rd, root, "", "ret", true);
	if (!ret)
		e->ret = SPOOL_RET_ABSENT;
	else if (strcmp(ret, dsn_ret_name(DSN_RET_FULL)) == 0)
		e->ret = SPOOL_RET_FULL;
	else if (strcmp(ret, dsn_ret_name(DSN_RET_HDRS)) == 0)
		e->ret = SPOOL_RET_HDRS;
	else
		reader_fail(rd, "ret", "must be FULL, HDRS or null");
	free(ret);
	e->envid = read_string(rd, root, "", "envid", true);
	e->size = (uint64_t)read_integer(rd, root, "", "size", false, INT64_MAX);
	e->body_8bit = read_bool(rd, root, "", "body_8bit");
	e->smtputf8 = read_bool(rd, root, "", "smtputf8");
	e->attempts = (unsigned)read_integer(rd, root, "", "attempts", false, UINT_MAX);
	e->next_attempt = read_integer(rd, root, "", "next_attempt", false, INT64_MAX);
	e->last_attempt = read_integer(rd, root, "", "last_attempt", true, INT64_MAX);
	rcpts = read_member(rd, root, "", "recipients", JSON_ARRAY, false);
	if (!rcpts || rd->failed)
		return;
	e->recipients = xcalloc(json_array_size(rcpts), sizeof(*e->recipients));
	json_array_foreach(rcpts, i, v) {
		e->recipient_count++;
		read_recipient(rd, v, i, &e->recipients[i]);
		if (rd->failed)
			return;
	}
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
	struct envelope_reader rd = {.err = err, .errsz = errsz};
	struct spool_entry loaded;
	json_error_t jerr;
	json_t *root;
	char *path, *data;
	size_t len;

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
	/* Duplicate keys would make "which one counts" a guess. */
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (!root) {
		snprintf(err, errsz, "%s: line %d column %d: %s", path, jerr.line, jerr.column,
			jerr.text);
		free(path);
		errno = EINVAL;
		return -1;
	}
	memset(&loaded, 0, sizeof(loaded));
	rd.file = path;
	envelope_from_json(&rd, root, id, &loaded);
	json_decref(root);
	free(path);
	if (rd.failed) {
		spool_entry_free(&loaded);
		errno = EINVAL;
		return -1;
	}
	*e = loaded;
	return 0;
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

	text = envelope_serialize(e);
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
	if (m->file.synced)
		return 0;
	if (m->file.fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (m->error) {
		errno = m->error;
		spool_message_abort(m);
		return -1;
	}
	/* The data must be on disk before a name in msg/ points at it. */
	return fs_durable_sync(&m->file);
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
	if (!e->id || strcmp(e->id, m->id) != 0 || !(text = envelope_serialize(&sized))) {
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
