/* mail/headers.c: RFC 5322 header section split into fields, edited, and written back with
 * every untouched field byte-exact. Lenient in what it reads (bare LF, lines that are not
 * fields, no blank line), strict in what it writes. */
#include "mail/headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "mail/date.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 3.6.8 ftext: printable US-ASCII except the colon. */
static bool is_ftext(char c)
{
	unsigned char u = (unsigned char)c;

	return u >= 33 && u <= 126 && u != ':';
}

/* RFC 5322 3.2.3 atext. */
static bool is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		(c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool mail_dot_atom_text(const char *s, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (run == 0)
				return false;
			run = 0;
		} else if (is_atext(s[i])) {
			run++;
		} else {
			return false;
		}
	}
	return run > 0;
}

static bool is_dot_atom_text(const char *s)
{
	return mail_dot_atom_text(s, strlen(s));
}

/* Finds the name and the colon of a field: "name" *WSP ":" (RFC 5322 2.2, and 4.5.8 for the
 * obsolete whitespace before the colon). Anything else is not a field: name_len 0. */
static void field_analyze(struct mail_field *f)
{
	size_t i = 0;

	while (i < f->raw_len && is_ftext(f->raw[i]))
		i++;
	size_t name_len = i;
	while (i < f->raw_len && is_wsp(f->raw[i]))
		i++;
	if (name_len > 0 && i < f->raw_len && f->raw[i] == ':') {
		f->name_len = name_len;
		f->value_offset = i + 1;
	} else {
		f->name_len = 0;
		f->value_offset = 0;
	}
}

static void headers_push(struct mail_headers *h, const char *raw, size_t raw_len)
{
	if (h->count == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->fields = xrealloc(h->fields, h->cap * sizeof(*h->fields));
	}
	struct mail_field *f = &h->fields[h->count++];
	f->raw = xmalloc(raw_len ? raw_len : 1);
	memcpy(f->raw, raw, raw_len);
	f->raw_len = raw_len;
	field_analyze(f);
}

static bool line_is_blank(const char *line, size_t len)
{
	return (len == 1 && line[0] == '\n') || (len == 2 && line[0] == '\r' && line[1] == '\n');
}

enum mail_headers_status mail_headers_parse(const char *data, size_t len, struct mail_headers *h,
	size_t *header_len)
{
	struct mail_headers tmp = {.separator = "", .newline = NULL};
	/* Never look further than one octet past the limit: that is enough to know it is hit. */
	size_t scan_end = len <= MAIL_HEADER_SECTION_MAX ? len :
		(size_t)MAIL_HEADER_SECTION_MAX + 1;
	size_t pos = 0;
	size_t field_start = 0;
	bool field_open = false;

	while (pos < len) {
		const char *lf = memchr(data + pos, '\n', scan_end - pos);
		size_t line_end = lf ? (size_t)(lf - data) + 1 : scan_end;

		if (line_end > MAIL_HEADER_SECTION_MAX)
			goto too_big;
		if (lf && !tmp.newline)
			tmp.newline = lf > data + pos && lf[-1] == '\r' ? "\r\n" : "\n";
		if (line_is_blank(data + pos, line_end - pos)) {
			tmp.separator = data[pos] == '\r' ? "\r\n" : "\n";
			break;
		}
		/* RFC 5322 2.2.3: a line starting with whitespace continues the field before it.
		 * With no field before it, it is kept as a line of its own. */
		if (!(field_open && is_wsp(data[pos]))) {
			if (field_open)
				headers_push(&tmp, data + field_start, pos - field_start);
			if (tmp.count >= MAIL_HEADER_FIELDS_MAX)
				goto too_big;
			field_start = pos;
			field_open = true;
		}
		pos = line_end;
	}
	if (field_open)
		headers_push(&tmp, data + field_start, pos - field_start);
	if (!tmp.newline)
		tmp.newline = "\r\n";
	*header_len = pos + strlen(tmp.separator);
	*h = tmp;
	return MAIL_HEADERS_OK;

too_big:
	mail_headers_free(&tmp);
	return MAIL_HEADERS_TOO_BIG;
}

void mail_headers_free(struct mail_headers *h)
{
	for (size_t i = 0; i < h->count; i++)
		free(h->fields[i].raw);
	free(h->fields);
	h->fields = NULL;
	h->count = 0;
	h->cap = 0;
}

void mail_headers_serialize(const struct mail_headers *h, struct strbuf *out)
{
	for (size_t i = 0; i < h->count; i++)
		strbuf_append(out, h->fields[i].raw, h->fields[i].raw_len);
	strbuf_append_str(out, h->separator);
}

size_t mail_headers_index(const struct mail_headers *h, const char *name, size_t from)
{
	size_t name_len = strlen(name);

	for (size_t i = from; i < h->count; i++) {
		const struct mail_field *f = &h->fields[i];
		if (f->name_len == name_len && strncasecmp(f->raw, name, name_len) == 0)
			return i;
	}
	return MAIL_HEADERS_NOT_FOUND;
}

const struct mail_field *mail_headers_find(const struct mail_headers *h, const char *name)
{
	size_t i = mail_headers_index(h, name, 0);

	return i == MAIL_HEADERS_NOT_FOUND ? NULL : &h->fields[i];
}

void mail_field_unfold_value(const struct mail_field *f, struct strbuf *out)
{
	const char *v = f->raw + f->value_offset;
	size_t len = f->raw_len - f->value_offset;
	size_t start = out->len;

	if (len && v[len - 1] == '\n') {
		len--;
		if (len && v[len - 1] == '\r')
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '\n' && i + 1 < len && is_wsp(v[i + 1])) {
			/* RFC 5322 2.2.3: unfolding removes the line end, not the whitespace. */
			if (out->len > start && out->data[out->len - 1] == '\r')
				out->len--;
			continue;
		}
		strbuf_append(out, v + i, 1);
	}
	if (out->len == start)
		return;
	size_t lead = 0;
	while (start + lead < out->len && is_wsp(out->data[start + lead]))
		lead++;
	memmove(out->data + start, out->data + start + lead, out->len - start - lead);
	out->len -= lead;
	while (out->len > start && is_wsp(out->data[out->len - 1]))
		out->len--;
	out->data[out->len] = '\0';
}

/* True when raw is exactly one field as mail_headers_parse() would read it: not starting with
 * whitespace or an empty line, and every line end but a final one followed by SP or HTAB. */
static bool raw_is_one_field(const char *raw, size_t len)
{
	if (len == 0 || is_wsp(raw[0]) || raw[0] == '\n' ||
	    (raw[0] == '\r' && len > 1 && raw[1] == '\n'))
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (raw[i] == '\n' && !is_wsp(raw[i + 1]))
			return false;
	return true;
}

static bool raw_ends_line(const struct mail_field *f)
{
	return f->raw_len && f->raw[f->raw_len - 1] == '\n';
}

/* Ends the field's last line. A last line ending in a bare CR keeps it as content with a
 * CRLF after it, whatever the message's line ends: "\r" + "\n" would make an empty line of
 * a lone "\r" and end the header section there. */
static void field_add_line_end(struct mail_field *f, const char *newline)
{
	if (f->raw_len && f->raw[f->raw_len - 1] == '\r')
		newline = "\r\n";
	size_t n = strlen(newline);

	f->raw = xrealloc(f->raw, f->raw_len + n);
	memcpy(f->raw + f->raw_len, newline, n);
	f->raw_len += n;
}

void mail_headers_replace(struct mail_headers *h, size_t index, const char *raw, size_t raw_len)
{
	if (index >= h->count || !raw_is_one_field(raw, raw_len))
		fatal("event=bad_header_replace index=%zu", index);
	struct mail_field *f = &h->fields[index];
	free(f->raw);
	f->raw = xmalloc(raw_len);
	memcpy(f->raw, raw, raw_len);
	f->raw_len = raw_len;
	field_analyze(f);
	/* Only the very last line of a section without a blank line may lack its line end:
	 * anywhere else the next field would be glued onto this one. */
	if (!raw_ends_line(f) && (index + 1 < h->count || h->separator[0]))
		field_add_line_end(f, h->newline);
}

void mail_headers_remove(struct mail_headers *h, size_t index)
{
	if (index >= h->count)
		fatal("event=bad_header_remove index=%zu", index);
	free(h->fields[index].raw);
	memmove(&h->fields[index], &h->fields[index + 1],
		(h->count - index - 1) * sizeof(*h->fields));
	h->count--;
}

void mail_headers_append(struct mail_headers *h, const char *name, const char *value)
{
	struct strbuf line;

	for (const char *p = name; *p; p++)
		if (!is_ftext(*p))
			fatal("event=bad_header_name");
	if (!*name || strpbrk(value, "\r\n"))
		fatal("event=bad_header_value name=%s", name);
	if (h->count && !raw_ends_line(&h->fields[h->count - 1]))
		field_add_line_end(&h->fields[h->count - 1], h->newline);
	strbuf_init(&line);
	strbuf_appendf(&line, "%s: %s%s", name, value, h->newline);
	headers_push(h, line.data, line.len);
	strbuf_free(&line);
}

unsigned mail_headers_ensure_date_and_message_id(struct mail_headers *h, time_t now,
	const char *token, const char *domain)
{
	unsigned added = 0;

	/* RFC 5322 3.6.4: msg-id = "<" id-left "@" id-right ">"; both are dot-atom-text here. */
	if (!is_dot_atom_text(token) || !is_dot_atom_text(domain))
		fatal("event=bad_message_id_parts");
	if (!mail_headers_find(h, "Date")) {
		char date[MAIL_DATE_MAX];
		mail_date_format(now, date);
		mail_headers_append(h, "Date", date);
		added |= MAIL_ADDED_DATE;
	}
	if (!mail_headers_find(h, "Message-ID")) {
		struct strbuf id;
		strbuf_init(&id);
		strbuf_appendf(&id, "<%s@%s>", token, domain);
		mail_headers_append(h, "Message-ID", id.data);
		strbuf_free(&id);
		added |= MAIL_ADDED_MESSAGE_ID;
	}
	return added;
}

/* ---- Message-ID at receipt ---- */

enum {
	SCAN_LINE_START, /* at the first octet of a line */
	SCAN_CR_START,   /* a line began with CR: the blank line if LF follows */
	SCAN_NAME,       /* the line so far is a prefix of "Message-ID" */
	SCAN_NAME_WSP,   /* "Message-ID" then whitespace: a colon makes it the field */
	SCAN_LINE,       /* the rest of a line */
	SCAN_DONE,
};

static const char message_id_name[] = "message-id";
#define MESSAGE_ID_NAME_LEN (sizeof(message_id_name) - 1)

void mail_message_id_scan_init(struct mail_message_id_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->state = SCAN_LINE_START;
}

bool mail_message_id_scan_active(const struct mail_message_id_scan *s)
{
	return s->state != SCAN_DONE;
}

static enum mail_message_id_step scan_end(struct mail_message_id_scan *s)
{
	s->state = SCAN_DONE;
	return s->found ? MAIL_MESSAGE_ID_OVER : MAIL_MESSAGE_ID_INSERT;
}

static char scan_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

enum mail_message_id_step mail_message_id_scan_feed(struct mail_message_id_scan *s, char c)
{
	s->octets++;
	if (s->state != SCAN_DONE && s->octets > 2 * (uint64_t)MAIL_HEADER_SECTION_MAX) {
		/* One line this long: no line start to insert at. */
		s->state = SCAN_DONE;
		return MAIL_MESSAGE_ID_OVER;
	}
	switch (s->state) {
	case SCAN_LINE_START:
		if (is_wsp(c)) {
			s->state = SCAN_LINE; /* a continuation: never a field name */
			return MAIL_MESSAGE_ID_WRITE;
		}
		/* A new line, after the limit or as the blank line: the section ends before it. */
		if (s->octets > MAIL_HEADER_SECTION_MAX || c == '\n')
			return scan_end(s);
		if (c == '\r') {
			s->state = SCAN_CR_START;
			return MAIL_MESSAGE_ID_HOLD;
		}
		s->matched = 0;
		s->state = SCAN_NAME;
		break;
	case SCAN_CR_START:
		if (c == '\n')
			return scan_end(s);
		s->state = SCAN_LINE; /* a line starting with a bare CR: not a field */
		return MAIL_MESSAGE_ID_RELEASE;
	case SCAN_DONE:
		return MAIL_MESSAGE_ID_OVER;
	default:
		break;
	}
	if (c == '\n') {
		s->state = SCAN_LINE_START;
		return MAIL_MESSAGE_ID_WRITE;
	}
	if (s->state == SCAN_NAME) {
		if (s->matched < MESSAGE_ID_NAME_LEN && scan_lower(c) == message_id_name[s->matched]) {
			s->matched++;
			return MAIL_MESSAGE_ID_WRITE;
		}
		if (s->matched == MESSAGE_ID_NAME_LEN && (c == ':' || is_wsp(c))) {
			s->state = SCAN_NAME_WSP;
		} else {
			s->state = SCAN_LINE;
			return MAIL_MESSAGE_ID_WRITE;
		}
	}
	if (s->state == SCAN_NAME_WSP) {
		/* RFC 5322 4.5.8: obsolete whitespace before the colon. */
		if (c == ':') {
			s->found = true;
			s->state = SCAN_LINE;
		} else if (!is_wsp(c)) {
			s->state = SCAN_LINE;
		}
	}
	return MAIL_MESSAGE_ID_WRITE;
}

bool mail_message_id_scan_missing_at_end(const struct mail_message_id_scan *s,
	bool *line_end_first)
{
	*line_end_first = s->state != SCAN_LINE_START && s->state != SCAN_CR_START;
	return s->state != SCAN_DONE && !s->found;
}

void mail_message_id_field(struct strbuf *out, const char *token, const char *domain)
{
	if (!is_dot_atom_text(token))
		fatal("event=bad_message_id_parts");
	strbuf_appendf(out, "Message-ID: <%s@%s>\r\n", token,
		is_dot_atom_text(domain) ? domain : "mailpopbox.invalid");
}

size_t mail_skip_quoted_string(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return SIZE_MAX;
}

size_t mail_skip_comment(const char *s, size_t len, size_t i)
{
	size_t depth = 0;

	for (; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i + 1;
	}
	return SIZE_MAX;
}
