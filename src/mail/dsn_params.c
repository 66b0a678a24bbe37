/* mail/dsn_params.c: RFC 3461 NOTIFY, RET and ORCPT values and the xtext encoding. */
#include "mail/dsn_params.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounds.h"
#include "strbuf.h"

/* RFC 3461 4.1 keywords, in the order they are written. */
static const struct {
	const char *name;
	unsigned bit;
} notify_keywords[] = {
	{"NEVER", DSN_NOTIFY_NEVER},
	{"SUCCESS", DSN_NOTIFY_SUCCESS},
	{"FAILURE", DSN_NOTIFY_FAILURE},
	{"DELAY", DSN_NOTIFY_DELAY},
};

static const char *const ret_names[] = {
	[DSN_RET_FULL] = "FULL",
	[DSN_RET_HDRS] = "HDRS",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The bit of the keyword s[0..len), any case, or 0. */
static unsigned notify_keyword_bit(const char *s, size_t len)
{
	for (size_t k = 0; k < ARRAY_SIZE(notify_keywords); k++)
		if (strlen(notify_keywords[k].name) == len &&
		    strncasecmp(s, notify_keywords[k].name, len) == 0)
			return notify_keywords[k].bit;
	return 0;
}

bool dsn_notify_parse(const char *s, size_t len, unsigned *notify)
{
	unsigned flags = 0;
	size_t i = 0;

	if (len == 0)
		return false;
	while (i <= len) {
		size_t start = i;
		unsigned bit;

		while (i < len && s[i] != ',')
			i++;
		/* An empty keyword (",," or a trailing comma) matches none. */
		bit = notify_keyword_bit(s + start, i - start);
		if (!bit)
			return false;
		flags |= bit;
		i++;
	}
	/* RFC 3461 4.1: NEVER "MUST NOT" be combined with the others. */
	if ((flags & DSN_NOTIFY_NEVER) && flags != DSN_NOTIFY_NEVER)
		return false;
	*notify = flags;
	return true;
}

char *dsn_notify_format(unsigned notify)
{
	struct strbuf sb;

	if (!notify)
		return NULL;
	strbuf_init(&sb);
	for (size_t k = 0; k < ARRAY_SIZE(notify_keywords); k++) {
		if (!(notify & notify_keywords[k].bit))
			continue;
		if (sb.len)
			strbuf_append(&sb, ",", 1);
		strbuf_append_str(&sb, notify_keywords[k].name);
	}
	if (!sb.data)
		strbuf_append(&sb, "", 0);
	return sb.data;
}

const char *dsn_notify_name(unsigned bit)
{
	for (size_t k = 0; k < ARRAY_SIZE(notify_keywords); k++)
		if (notify_keywords[k].bit == bit)
			return notify_keywords[k].name;
	return NULL;
}

unsigned dsn_notify_bit(const char *name)
{
	for (size_t k = 0; k < ARRAY_SIZE(notify_keywords); k++)
		if (strcmp(notify_keywords[k].name, name) == 0)
			return notify_keywords[k].bit;
	return 0;
}

bool dsn_ret_parse(const char *s, size_t len, enum dsn_ret *ret)
{
	for (size_t r = DSN_RET_FULL; r < ARRAY_SIZE(ret_names); r++)
		if (strlen(ret_names[r]) == len && strncasecmp(s, ret_names[r], len) == 0) {
			*ret = (enum dsn_ret)r;
			return true;
		}
	return false;
}

const char *dsn_ret_name(enum dsn_ret ret)
{
	return (size_t)ret < ARRAY_SIZE(ret_names) ? ret_names[ret] : NULL;
}

/* RFC 3461 4: hexchar uses upper-case digits only. */
static int xtext_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xchar: any printable ASCII but "+" and "=". */
static bool is_xchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '+' && c != '=';
}

/* Reads the octet that starts at s[*i] (an xchar, or "+" and two hex digits) into *octet and
 * moves *i past it. False on bad syntax. */
static bool xtext_next(const char *s, size_t len, size_t *i, unsigned char *octet)
{
	unsigned char c = (unsigned char)s[*i];
	int hi, lo;

	if (c != '+') {
		*octet = c;
		(*i)++;
		return is_xchar(c);
	}
	if (*i + 2 >= len)
		return false;
	hi = xtext_hex_value(s[*i + 1]);
	lo = xtext_hex_value(s[*i + 2]);
	if (hi < 0 || lo < 0)
		return false;
	*octet = (unsigned char)(hi * 16 + lo);
	*i += 3;
	return true;
}

bool dsn_xtext_decode(const char *in, size_t len, char *out, size_t size)
{
	size_t i = 0, o = 0;

	if (len == 0)
		return false;
	while (i < len) {
		unsigned char c;

		if (!xtext_next(in, len, &i, &c) || c < 0x20 || c == 0x7f || o + 1 >= size)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

char *dsn_xtext_encode(const char *s)
{
	struct strbuf sb;

	strbuf_init(&sb);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_xchar(c))
			strbuf_append(&sb, s, 1);
		else
			strbuf_appendf(&sb, "+%02X", c);
	}
	if (!sb.data)
		strbuf_append(&sb, "", 0);
	return sb.data;
}

bool dsn_xtext_valid(const char *s, size_t max)
{
	size_t len = strlen(s), i = 0;

	if (len == 0 || len > max)
		return false;
	while (i < len) {
		unsigned char c;

		if (!xtext_next(s, len, &i, &c))
			return false;
	}
	return true;
}

char *dsn_orcpt_encode(const char *orcpt)
{
	/* ";" is an xchar, so the addr-type and its ";" come out as they are ("rfc822;"); an
	 * addr-type a client spelled with "+" or "=" is encoded rather than sent invalid. */
	return dsn_xtext_encode(orcpt);
}

bool dsn_orcpt_decode(const char *in, size_t len, char *out, size_t size)
{
	return dsn_xtext_decode(in, len, out, size) && strchr(out, ';');
}

bool dsn_orcpt_valid(const char *s)
{
	const char *semi = strchr(s, ';');

	return semi && semi != s && semi[1] != '\0' && dsn_xtext_valid(s, SMTP_ORCPT_MAX);
}
