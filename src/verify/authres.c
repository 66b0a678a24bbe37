/* verify/authres.c: the Authentication-Results header field (RFC 8601) we prepend to received
 * mail, and the test for a field that claims our authserv-id (RFC 8601 5), so such forgeries
 * can be removed. Pure: no I/O. */
#include "verify/authres.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "mail/headers.h"

static const char *const result_names[] = {
	[AUTH_NONE] = "none",
	[AUTH_PASS] = "pass",
	[AUTH_FAIL] = "fail",
	[AUTH_SOFTFAIL] = "softfail",
	[AUTH_NEUTRAL] = "neutral",
	[AUTH_TEMPERROR] = "temperror",
	[AUTH_PERMERROR] = "permerror",
	[AUTH_POLICY] = "policy",
};

const char *auth_result_name(enum auth_result r)
{
	if ((size_t)r >= sizeof(result_names) / sizeof(result_names[0]) || !result_names[r])
		return "permerror";
	return result_names[r];
}

static const char *dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_QUARANTINE:
		return "quarantine";
	case DMARC_POLICY_REJECT:
		return "reject";
	case DMARC_POLICY_ABSENT:
	case DMARC_POLICY_NONE:
		break;
	}
	return "none";
}

/* RFC 2045 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>. */
static bool token_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return !strchr("()<>@,;:\\\"/[]?=", c);
}

static bool is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!token_char((unsigned char)s[i]))
			return false;
	return true;
}

/* A domain-name as RFC 8601 2.2 pvalue allows it: letters, digits, hyphens and dots. */
static bool is_domain_name(const char *s, size_t len)
{
	bool after_dot = true;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (after_dot)
				return false;
			after_dot = true;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_') {
			after_dot = false;
		} else {
			return false;
		}
	}
	return !after_dot;
}

/* RFC 8601 2.2: pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS], where
 * value is an RFC 2045 token or quoted-string. A plain address (dot-atom@domain) or a token is
 * written as it is; anything else as a quoted-string, with '"' and '\' escaped and octets that
 * cannot appear in a header line (CTLs: CR, LF, NUL...) replaced by '?', so a value can never
 * end the field or add one. */
static void append_value(struct strbuf *out, const char *s)
{
	size_t len = strlen(s);
	const char *at = memchr(s, '@', len);

	if (is_token(s, len)) {
		strbuf_append(out, s, len);
		return;
	}
	if (at && (at == s || mail_dot_atom_text(s, (size_t)(at - s))) &&
		is_domain_name(at + 1, len - (size_t)(at - s) - 1)) {
		strbuf_append(out, s, len);
		return;
	}
	strbuf_append_str(out, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			strbuf_append_str(out, "\\");
			strbuf_append(out, &s[i], 1);
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			strbuf_append_str(out, "?");
		} else {
			strbuf_append(out, &s[i], 1);
		}
	}
	strbuf_append_str(out, "\"");
}

/* RFC 5322 3.2.2 comment: '(', ')' and '\' escaped, CTLs replaced. */
static void append_comment(struct strbuf *out, const char *s)
{
	strbuf_append_str(out, " (");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '(' || c == ')' || c == '\\') {
			strbuf_append_str(out, "\\");
			strbuf_append(out, s, 1);
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			strbuf_append_str(out, "?");
		} else {
			strbuf_append(out, s, 1);
		}
	}
	strbuf_append_str(out, ")");
}

static void append_property(struct strbuf *out, const char *name, const char *value)
{
	if (!value[0])
		return;
	strbuf_append_str(out, " ");
	strbuf_append_str(out, name);
	strbuf_append_str(out, "=");
	append_value(out, value);
}

/* Each resinfo on its own folded line; the ';' that ends the previous one comes first. */
static void begin_resinfo(struct strbuf *out, const char *newline)
{
	strbuf_append_str(out, ";");
	strbuf_append_str(out, newline);
	strbuf_append_str(out, "\t");
}

void authres_write(const struct authres *ar, const char *authserv_id, const char *newline,
	struct strbuf *out)
{
	size_t count = ar->dkim_count;

	strbuf_append_str(out, "Authentication-Results: ");
	append_value(out, authserv_id);

	begin_resinfo(out, newline);
	strbuf_appendf(out, "spf=%s", auth_result_name(ar->spf_mailfrom.result));
	append_property(out, "smtp.mailfrom", ar->spf_mailfrom.identity);

	begin_resinfo(out, newline);
	strbuf_appendf(out, "spf=%s", auth_result_name(ar->spf_helo.result));
	append_property(out, "smtp.helo", ar->spf_helo.identity);

	if (count > DKIM_SIGNATURES_MAX)
		count = DKIM_SIGNATURES_MAX;
	if (count == 0) {
		begin_resinfo(out, newline);
		strbuf_append_str(out, "dkim=none");
	}
	for (size_t i = 0; i < count; i++) {
		const struct authres_dkim *d = &ar->dkim[i];
		begin_resinfo(out, newline);
		strbuf_appendf(out, "dkim=%s", auth_result_name(d->result));
		if (d->comment[0])
			append_comment(out, d->comment);
		append_property(out, "header.d", d->domain);
		append_property(out, "header.s", d->selector);
		append_property(out, "header.b", d->b);
	}

	begin_resinfo(out, newline);
	strbuf_appendf(out, "dmarc=%s", auth_result_name(ar->dmarc.result));
	if (ar->dmarc.policy != DMARC_POLICY_ABSENT) {
		char comment[64];
		strcpy(comment, "p=");
		strcat(comment, dmarc_policy_name(ar->dmarc.policy));
		strcat(comment, " dis=");
		strcat(comment, dmarc_policy_name(ar->dmarc.disposition));
		append_comment(out, comment);
	}
	append_property(out, "header.from", ar->dmarc.from_domain);
	strbuf_append_str(out, newline);
}

/* ---- recognising a field that claims our authserv-id ---- */

/* RFC 5322 3.2.2 CFWS: folding white space and (nested) comments. Returns the offset after
 * it, or len + 1 for a comment that never ends (malformed). */
static size_t skip_cfws(const char *s, size_t len, size_t i)
{
	while (i < len) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else if (c == '(') {
			size_t depth = 0;
			for (; i < len; i++) {
				if (s[i] == '\\') {
					i++;
				} else if (s[i] == '(') {
					depth++;
				} else if (s[i] == ')') {
					if (--depth == 0)
						break;
				}
			}
			if (i >= len)
				return len + 1;
			i++;
		} else {
			break;
		}
	}
	return i;
}

bool authres_claims(const char *value, size_t len, const char *authserv_id)
{
	size_t id_len = strlen(authserv_id);
	size_t i = skip_cfws(value, len, 0);
	size_t matched = 0;

	if (id_len == 0 || i >= len)
		return false;
	if (value[i] == '"') {
		/* quoted-string: compare its unescaped content. */
		for (i++; i < len && value[i] != '"'; i++) {
			char c = value[i];
			if (c == '\\') {
				if (++i >= len)
					return false;
				c = value[i];
			} else if (c == '\r' || c == '\n') {
				continue; /* folding inside the quotes */
			}
			if (matched >= id_len ||
				strncasecmp(&c, &authserv_id[matched], 1) != 0)
				return false;
			matched++;
		}
		if (i >= len)
			return false;
		i++;
	} else {
		size_t start = i;
		while (i < len && token_char((unsigned char)value[i]))
			i++;
		if (i - start != id_len || strncasecmp(&value[start], authserv_id, id_len) != 0)
			return false;
		matched = id_len;
	}
	if (matched != id_len)
		return false;
	/* What may follow: the end, CFWS (then perhaps a version), or the ';' of a resinfo. */
	return i == len || value[i] == ';' || value[i] == ' ' || value[i] == '\t' ||
		value[i] == '\r' || value[i] == '\n' || value[i] == '(';
}
