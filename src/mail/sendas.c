/* mail/sendas.c: the "[sendas:NAME]" Subject tag: find it (in plain text or in RFC 2047
 * encoded-words), take it out of the Subject, and put NAME@DOMAIN in the From address.
 * The rules are in sendas.h. */
#include "mail/sendas.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mail/rfc2047.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Whitespace that may separate tokens in a raw field value, folds included. */
static bool is_linear_space(char c)
{
	return is_wsp(c) || c == '\r' || c == '\n';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Where a field's value ends: before its final line end. */
static size_t field_value_end(const struct mail_field *f)
{
	size_t end = f->raw_len;

	if (end > f->value_offset && f->raw[end - 1] == '\n') {
		end--;
		if (end > f->value_offset && f->raw[end - 1] == '\r')
			end--;
	}
	return end;
}

/* ---- The tag ---- */

struct sendas_tag {
	size_t start;     /* the '[' */
	size_t end;       /* after the ']' (valid tags only) */
	bool valid;
	const char *name; /* NAME inside the searched text, name_len octets */
	size_t name_len;
};

enum tag_state { TAG_NONE, TAG_FOUND, TAG_INVALID };

static bool is_name_char(char c)
{
	return is_alnum(c) || c == '.' || c == '-' || c == '_';
}

/* NAME becomes a local-part: RFC 5321 4.5.3.1.1 length, RFC 5322 3.4.1 dot-atom (no dot at
 * either end, none doubled), so the address we send from is one every MTA accepts. */
static bool tag_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > SMTP_LOCAL_PART_MAX || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
	return true;
}

/* Finds the first "[sendas:" (any case) in s and reads the tag it starts. False if there is
 * none; true with tag->valid telling whether it is a whole, valid tag. */
static bool tag_find(const char *s, size_t len, struct sendas_tag *tag)
{
	static const char prefix[] = "[sendas:";
	const size_t prefix_len = sizeof(prefix) - 1;

	for (size_t i = 0; i + prefix_len <= len; i++) {
		if (s[i] != '[' || strncasecmp(s + i, prefix, prefix_len) != 0)
			continue;
		size_t j = i + prefix_len;
		while (j < len && is_wsp(s[j]))
			j++;
		size_t name_start = j;
		while (j < len && is_name_char(s[j]))
			j++;
		tag->name = s + name_start;
		tag->name_len = j - name_start;
		while (j < len && is_wsp(s[j]))
			j++;
		tag->start = i;
		tag->valid = j < len && s[j] == ']' && tag_name_valid(tag->name, tag->name_len);
		tag->end = j + 1;
		return true;
	}
	return false;
}

/* Copies a found tag's NAME out (before the text it points into changes). */
static enum tag_state tag_take(const struct sendas_tag *tag, char name[SMTP_LOCAL_PART_MAX + 1])
{
	if (!tag->valid)
		return TAG_INVALID;
	memcpy(name, tag->name, tag->name_len);
	name[tag->name_len] = '\0';
	return TAG_FOUND;
}

/* Deletes s[start, end) and one space next to it, so "a [t] b" becomes "a b" and "a [t]"
 * becomes "a": the space after is taken, else the one before, but never the one that starts
 * a continuation line (RFC 5322 2.2.3: without it the line would become a field of its own). */
static void remove_with_adjacent_space(struct strbuf *s, size_t start, size_t end)
{
	bool starts_continuation = start >= 2 && s->data[start - 2] == '\n';

	if (end < s->len && is_wsp(s->data[end]))
		end++;
	else if (start > 0 && is_wsp(s->data[start - 1]) && !starts_continuation)
		start--;
	if (end == start)
		return;
	memmove(s->data + start, s->data + end, s->len - end);
	s->len -= end - start;
	s->data[s->len] = '\0';
}

/* Drops continuation lines left holding only whitespace after an edit (RFC 5322 4.2 keeps
 * them for reading only; 3.2.2 never generates them), joining the line ends around them. */
static void drop_blank_continuations(struct strbuf *s)
{
	struct strbuf out;
	size_t pos = 0;
	const char *pending_end = "";
	size_t pending_len = 0;
	bool first = true;

	strbuf_init(&out);
	while (pos < s->len) {
		const char *lf = memchr(s->data + pos, '\n', s->len - pos);
		size_t line_end = lf ? (size_t)(lf - s->data) + 1 : s->len;
		size_t content_end = line_end;
		if (lf) {
			content_end--;
			if (content_end > pos && s->data[content_end - 1] == '\r')
				content_end--;
		}
		bool blank = !first;
		for (size_t i = pos; blank && i < content_end; i++)
			blank = is_wsp(s->data[i]);
		if (!blank) {
			strbuf_append(&out, pending_end, pending_len);
			strbuf_append(&out, s->data + pos, content_end - pos);
		}
		pending_end = s->data + content_end;
		pending_len = line_end - content_end;
		pos = line_end;
		first = false;
	}
	strbuf_append(&out, pending_end, pending_len);
	strbuf_free(s);
	*s = out;
}

/* Builds in out the Subject field f without its first tag (the rules are in sendas.h) and
 * copies the tag's NAME. out is only meaningful when TAG_FOUND is returned. */
static enum tag_state subject_remove_tag(const struct mail_field *f, const char *newline,
	struct strbuf *out, char name[SMTP_LOCAL_PART_MAX + 1])
{
	const char *raw = f->raw;
	size_t value_end = field_value_end(f);
	size_t pos = f->value_offset;
	enum tag_state state = TAG_NONE;
	struct strbuf decoded;
	struct sendas_tag tag;

	strbuf_init(&decoded);
	while (pos < value_end) {
		struct rfc2047_word first;
		strbuf_reset(&decoded);
		bool have_word = rfc2047_word_next(raw, value_end, pos, &first, &decoded);
		size_t plain_end = have_word ? first.start : value_end;

		if (tag_find(raw + pos, plain_end - pos, &tag)) {
			state = tag_take(&tag, name);
			if (state == TAG_FOUND) {
				strbuf_append(out, raw, f->raw_len);
				remove_with_adjacent_space(out, pos + tag.start, pos + tag.end);
			}
			break;
		}
		if (!have_word)
			break;
		size_t run_end = rfc2047_run_end(raw, value_end, &first, &decoded);
		enum rfc2047_charset kind = rfc2047_charset_of(&first);
		if (kind != RFC2047_CHARSET_OPAQUE && tag_find(decoded.data, decoded.len, &tag)) {
			state = tag_take(&tag, name);
			if (state == TAG_FOUND) {
				remove_with_adjacent_space(&decoded, tag.start, tag.end);
				strbuf_append(out, raw, first.start);
				rfc2047_text_write(out, &first, kind, decoded.data, decoded.len,
					newline);
				strbuf_append(out, raw + run_end, f->raw_len - run_end);
				/* Words that held only the tag go like a tag: with one space. */
				if (decoded.len == 0)
					remove_with_adjacent_space(out, first.start, first.start);
			}
			break;
		}
		pos = run_end;
	}
	strbuf_free(&decoded);
	if (state == TAG_FOUND)
		drop_blank_continuations(out);
	return state;
}

/* ---- The From address ---- */

/* Finds the address of the first mailbox of a From value (RFC 5322 3.4: name-addr or
 * addr-spec, with comments and quoted strings anywhere): [*start, *end) is what goes between
 * the angle brackets, or the bare addr-spec. False when the value cannot be read so. */
static bool mailbox_address_span(const char *s, size_t len, size_t *start, size_t *end)
{
	size_t i = 0;

	/* name-addr: the first '<' outside quoted strings and comments, before any ','. */
	while (i < len && s[i] != ',') {
		if (s[i] == '"') {
			i = mail_skip_quoted_string(s, len, i);
		} else if (s[i] == '(') {
			i = mail_skip_comment(s, len, i);
		} else if (s[i] == '<') {
			size_t j = i + 1;
			while (j < len && s[j] != '>')
				j = s[j] == '"' ? mail_skip_quoted_string(s, len, j) : j + 1;
			if (j >= len)
				return false;
			*start = i + 1;
			*end = j;
			return true;
		} else {
			i++;
		}
		if (i == SIZE_MAX)
			return false;
	}
	/* addr-spec: the first token after comments and whitespace. */
	i = 0;
	while (i < len && (is_linear_space(s[i]) || s[i] == '(')) {
		i = s[i] == '(' ? mail_skip_comment(s, len, i) : i + 1;
		if (i == SIZE_MAX)
			return false;
	}
	*start = i;
	while (i < len && !is_linear_space(s[i]) && s[i] != '(' && s[i] != ',') {
		if (s[i] == ':' || s[i] == ';' || s[i] == '<' || s[i] == '>')
			return false; /* a group (RFC 6854) or worse: not one address to replace */
		i = s[i] == '"' ? mail_skip_quoted_string(s, len, i) : i + 1;
		if (i == SIZE_MAX)
			return false;
	}
	*end = i;
	return *end > *start;
}

static void from_rewrite(struct mail_headers *h, size_t index, const char *address)
{
	const struct mail_field *f = &h->fields[index];
	size_t value_start = f->value_offset;
	size_t value_end = field_value_end(f);
	size_t start, end;
	struct strbuf raw;

	strbuf_init(&raw);
	if (mailbox_address_span(f->raw + value_start, value_end - value_start, &start, &end)) {
		strbuf_append(&raw, f->raw, value_start + start);
		strbuf_append_str(&raw, address);
		strbuf_append(&raw, f->raw + value_start + end, f->raw_len - value_start - end);
	} else {
		strbuf_append(&raw, f->raw, value_start);
		strbuf_appendf(&raw, " %s", address);
		strbuf_append(&raw, f->raw + value_end, f->raw_len - value_end);
	}
	mail_headers_replace(h, index, raw.data, raw.len);
	strbuf_free(&raw);
}

enum sendas_result sendas_apply(struct mail_headers *h, const char *domain,
	char new_sender[SMTP_PATH_MAX + 1])
{
	char name[SMTP_LOCAL_PART_MAX + 1];
	struct strbuf subject;
	enum sendas_result result;

	if (!domain[0] || strpbrk(domain, " \t\r\n<>()\",;:@"))
		fatal("event=bad_sendas_domain");
	size_t subject_index = mail_headers_index(h, "Subject", 0);
	if (subject_index == MAIL_HEADERS_NOT_FOUND)
		return SENDAS_NONE;
	strbuf_init(&subject);
	switch (subject_remove_tag(&h->fields[subject_index], h->newline, &subject, name)) {
	case TAG_NONE:
		result = SENDAS_NONE;
		break;
	case TAG_INVALID:
		result = SENDAS_INVALID_TAG;
		break;
	default:
		/* RFC 5321 4.5.3.1.3: "<" NAME "@" DOMAIN ">" must fit in a path. */
		if (strlen(name) + 1 + strlen(domain) + 2 > SMTP_PATH_MAX)
			result = SENDAS_INVALID_TAG;
		else if (mail_headers_index(h, "From", 0) == MAIL_HEADERS_NOT_FOUND)
			result = SENDAS_NO_FROM;
		else
			result = SENDAS_APPLIED;
		break;
	}
	if (result == SENDAS_APPLIED) {
		char address[SMTP_PATH_MAX + 1];
		snprintf(address, sizeof(address), "%s@%s", name, domain);
		mail_headers_replace(h, subject_index, subject.data, subject.len);
		/* RFC 5322 3.6 allows one From; should a message carry more, none keeps the old
		 * address for a reader or a DKIM verifier to pick. */
		for (size_t i = mail_headers_index(h, "From", 0); i != MAIL_HEADERS_NOT_FOUND;
		     i = mail_headers_index(h, "From", i + 1))
			from_rewrite(h, i, address);
		memcpy(new_sender, address, strlen(address) + 1);
	}
	strbuf_free(&subject);
	return result;
}
