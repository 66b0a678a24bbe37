/* queue/envelope.c: the spool entry in memory and its envelope file's JSON text, both ways.
 * Pure (no I/O), so the codec is unit-tested and fuzzed on its own; queue/spool.c does the
 * files. */
#include "queue/envelope.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "log.h"

static const char *const state_names[] = {
	[SPOOL_RCPT_PENDING] = "PENDING",
	[SPOOL_RCPT_DELIVERED] = "DELIVERED",
	[SPOOL_RCPT_FAILED] = "FAILED",
	[SPOOL_RCPT_EXPIRED] = "EXPIRED",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

char *spool_envelope_format(const struct spool_entry *e)
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

int spool_envelope_parse(const char *data, size_t len, const char *id, const char *file,
	struct spool_entry *e, char *err, size_t errsz)
{
	struct envelope_reader rd = {.file = file, .err = err, .errsz = errsz};
	struct spool_entry parsed;
	json_error_t jerr;
	json_t *root;

	/* Duplicate keys would make "which one counts" a guess. */
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errsz, "%s: line %d column %d: %s", file, jerr.line, jerr.column,
			jerr.text);
		return -1;
	}
	memset(&parsed, 0, sizeof(parsed));
	envelope_from_json(&rd, root, id, &parsed);
	json_decref(root);
	if (rd.failed) {
		spool_entry_free(&parsed);
		return -1;
	}
	*e = parsed;
	return 0;
}
