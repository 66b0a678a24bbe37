/* smtp/address.c: RFC 5321 4.1.2 path and parameter syntax. Strict about structure (a path
 * must parse to local@domain), lenient where real clients differ (a space after the colon,
 * a missing pair of angle brackets, like Postfix's default). */
#include "smtp/address.h"

#include <string.h>

/* RFC 5322 3.2.3 atext, plus octets >= 0x80 (RFC 6531 3.3 UTF-8 in local-parts). */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_let_dig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c >= 0x80;
}

bool smtp_domain_valid(const char *s, size_t len)
{
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	if (s[0] == '[') {
		/* address-literal: "[" 1*dcontent "]", checked loosely (RFC 5321 4.1.3). */
		if (len < 3 || s[len - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
				return false;
		}
		return true;
	}
	/* sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] */
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_let_dig(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/* Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2). Returns its length or 0. */
static size_t scan_local_part(const char *s, size_t len)
{
	size_t i = 0;

	if (len && s[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126)
					return 0;
				i++;
			} else if (c == '"') {
				return i + 1;
			} else if (c < 32 || c == 127) {
				return 0;
			}
		}
		return 0;
	}
	bool need_atom = true;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (need_atom)
				return 0;
			need_atom = true;
		} else if (is_atext(c)) {
			need_atom = false;
		} else {
			break;
		}
	}
	return need_atom ? 0 : i;
}

/* Parses a mailbox "local@domain" filling path; s has no brackets. */
static enum smtp_path_status parse_mailbox(const char *s, size_t len, struct smtp_path *path)
{
	size_t local = scan_local_part(s, len);

	if (local == 0 || local >= len || s[local] != '@')
		return SMTP_PATH_SYNTAX;
	if (local > SMTP_LOCAL_PART_MAX || len - local - 1 > SMTP_DOMAIN_MAX)
		return SMTP_PATH_TOO_LONG;
	if (!smtp_domain_valid(s + local + 1, len - local - 1))
		return SMTP_PATH_SYNTAX;
	memcpy(path->address, s, len);
	path->address[len] = '\0';
	path->local_len = local;
	path->domain = path->address + local + 1;
	path->domain_len = len - local - 1;
	path->utf8 = false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			path->utf8 = true;
	return SMTP_PATH_OK;
}

static enum smtp_path_status parse_params(const char *s, size_t len, struct smtp_param *params,
	size_t *count)
{
	size_t i = 0, n = 0;

	while (i < len) {
		if (s[i] == ' ') {
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (n == SMTP_MAX_PARAMS)
			return SMTP_PATH_PARAMS;
		const char *eq = memchr(s + start, '=', i - start);
		struct smtp_param *p = &params[n++];
		p->key = s + start;
		p->key_len = eq ? (size_t)(eq - (s + start)) : i - start;
		p->value = eq ? eq + 1 : NULL;
		p->value_len = eq ? (size_t)(s + i - (eq + 1)) : 0;
		/* RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		if (p->key_len == 0)
			return SMTP_PATH_PARAMS;
		for (size_t k = 0; k < p->key_len; k++) {
			char c = p->key[k];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || (c == '-' && k > 0)))
				return SMTP_PATH_PARAMS;
		}
	}
	*count = n;
	return SMTP_PATH_OK;
}

enum smtp_path_status smtp_path_parse(const char *arg, size_t len, bool allow_null,
	struct smtp_path *path, struct smtp_param *params, size_t *param_count)
{
	size_t i = 0, start, end;
	struct smtp_path parsed;
	enum smtp_path_status st;

	memset(&parsed, 0, sizeof(parsed));
	while (i < len && arg[i] == ' ')
		i++; /* "MAIL FROM: <a@b>" is common enough to accept */
	if (i < len && arg[i] == '<') {
		start = ++i;
		bool quoted = false;
		while (i < len && (quoted || arg[i] != '>')) {
			if (arg[i] == '\\' && quoted && i + 1 < len)
				i++;
			else if (arg[i] == '"')
				quoted = !quoted;
			i++;
		}
		if (i >= len)
			return SMTP_PATH_SYNTAX;
		end = i++;
		if (i < len && arg[i] != ' ')
			return SMTP_PATH_SYNTAX;
	} else {
		start = i;
		while (i < len && arg[i] != ' ')
			i++;
		end = i;
		if (end == start)
			return SMTP_PATH_SYNTAX;
	}
	if (end - start + 2 > SMTP_PATH_MAX)
		return SMTP_PATH_TOO_LONG;
	if (end == start) {
		if (!allow_null)
			return SMTP_PATH_SYNTAX;
		parsed.null_path = true;
	} else {
		const char *p = arg + start;
		size_t plen = end - start;
		/* RFC 5321 4.1.2 / C: a source route "@a,@b:" is accepted and ignored, so
		 * "<@local:user@remote>" is a path to user@remote. */
		if (p[0] == '@') {
			const char *colon = memchr(p, ':', plen);
			if (!colon)
				return SMTP_PATH_SYNTAX;
			size_t skip = (size_t)(colon - p) + 1;
			for (size_t k = 0; k + 1 < skip; k++) {
				if (p[k] == '@' && (k == 0 || p[k - 1] == ','))
					continue;
				if (p[k] == ',' || p[k] == '.' || p[k] == '-' ||
				    is_let_dig((unsigned char)p[k]))
					continue;
				return SMTP_PATH_SYNTAX;
			}
			p += skip;
			plen -= skip;
		}
		st = parse_mailbox(p, plen, &parsed);
		if (st != SMTP_PATH_OK)
			return st;
	}
	size_t count = 0;
	st = parse_params(arg + i, len - i, params, &count);
	if (st != SMTP_PATH_OK)
		return st;
	*path = parsed;
	if (!parsed.null_path)
		path->domain = path->address + path->local_len + 1;
	*param_count = count;
	return SMTP_PATH_OK;
}

void smtp_path_canonical(const struct smtp_path *path, char *out, size_t size)
{
	const char *a = path->address;
	size_t o = 0, i = 0, local = path->local_len;

	if (size == 0)
		return;
	if (local >= 2 && a[0] == '"') {
		for (i = 1; i + 1 < local && o + 1 < size; i++) {
			if (a[i] == '\\' && i + 2 < local)
				i++;
			out[o++] = a[i];
		}
		i = local;
	}
	for (; a[i] && o + 1 < size; i++)
		out[o++] = a[i];
	out[o] = '\0';
}
