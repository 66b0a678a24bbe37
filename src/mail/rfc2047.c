/* mail/rfc2047.c: RFC 2047 encoded-words: B and Q decoding, runs of words, and writing text
 * back as words folded to the RFC's lengths. */
#include "mail/rfc2047.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "mail/base64.h"

/* Whitespace that may separate tokens in a raw field value, folds included. */
static bool is_linear_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Gives back what a failed or unwanted decode appended. */
static void text_truncate(struct strbuf *s, size_t len)
{
	s->len = len;
	if (s->data)
		s->data[len] = '\0';
}

static bool has_prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

static bool equals_ci(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

enum rfc2047_charset rfc2047_charset_of(const struct rfc2047_word *w)
{
	const char *cs = w->charset;
	size_t len = w->charset_name_len;

	if (equals_ci(cs, len, "utf-8") || equals_ci(cs, len, "utf8"))
		return RFC2047_CHARSET_UTF8;
	if (equals_ci(cs, len, "us-ascii") || has_prefix_ci(cs, len, "iso-8859-") ||
	    has_prefix_ci(cs, len, "windows-125") || has_prefix_ci(cs, len, "cp125") ||
	    equals_ci(cs, len, "koi8-r") || equals_ci(cs, len, "koi8-u"))
		return RFC2047_CHARSET_SINGLE_OCTET;
	if (has_prefix_ci(cs, len, "euc-") || equals_ci(cs, len, "gb2312"))
		return RFC2047_CHARSET_EUC;
	return RFC2047_CHARSET_OPAQUE;
}

/* RFC 2047 2: token = 1*<any CHAR except SPACE, CTLs, and especials>. */
static bool is_token_char(char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\"/[]?.=", c);
}

/* RFC 2047 4.2: "_" is a space, "=XX" an octet, anything else itself. */
static bool q_decode(const char *s, size_t len, struct strbuf *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '_') {
			c = ' ';
		} else if (c == '=') {
			if (i + 2 >= len)
				return false;
			int hi = hex_value(s[i + 1]);
			int lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		strbuf_append(out, &c, 1);
	}
	return true;
}

/* Reads an encoded-word "=?charset?encoding?encoded-text?=" (RFC 2047 2) at s[i], decoding
 * its text onto decoded. False (decoded unchanged) when s[i] does not start a valid one. */
static bool encoded_word_parse(const char *s, size_t len, size_t i, struct rfc2047_word *w,
	struct strbuf *decoded)
{
	size_t j = i + 2;

	if (i + 2 > len || s[i] != '=' || s[i + 1] != '?')
		return false;
	while (j < len && is_token_char(s[j]))
		j++;
	w->charset = s + i + 2;
	w->charset_len = j - (i + 2);
	const char *star = memchr(w->charset, '*', w->charset_len);
	w->charset_name_len = star ? (size_t)(star - w->charset) : w->charset_len;
	if (w->charset_name_len == 0 || j + 2 >= len || s[j] != '?' || s[j + 2] != '?')
		return false;
	w->encoding = s[j + 1] == 'b' || s[j + 1] == 'B' ? 'B' :
		s[j + 1] == 'q' || s[j + 1] == 'Q' ? 'Q' : 0;
	if (!w->encoding)
		return false;
	size_t text = j + 3;
	size_t k = text;
	while (k < len && s[k] > 0x20 && s[k] < 0x7f && s[k] != '?')
		k++;
	if (k + 1 >= len || s[k] != '?' || s[k + 1] != '=')
		return false;
	size_t saved = decoded->len;
	bool ok = w->encoding == 'B' ? base64_decode_unpadded(s + text, k - text, decoded) :
		q_decode(s + text, k - text, decoded);
	if (!ok) {
		text_truncate(decoded, saved);
		return false;
	}
	w->start = i;
	w->end = k + 2;
	return true;
}

/* The first encoded-word at or after from. Words are recognised even when not set off by
 * whitespace ("Re:=?...?="), as mail readers do. */
bool rfc2047_word_next(const char *s, size_t len, size_t from, struct rfc2047_word *w,
	struct strbuf *decoded)
{
	for (size_t i = from; i + 1 < len; i++)
		if (s[i] == '=' && s[i + 1] == '?' && encoded_word_parse(s, len, i, w, decoded))
			return true;
	return false;
}

/* Extends the run of words starting with first over the words after it in the same charset
 * with only whitespace (or, leniently, nothing) between (RFC 2047 6.2: that whitespace is not
 * displayed, so the decoded texts join). Returns where the run ends; decoded then holds the
 * text of the whole run. */
size_t rfc2047_run_end(const char *s, size_t len, const struct rfc2047_word *first,
	struct strbuf *decoded)
{
	size_t end = first->end;

	for (;;) {
		struct rfc2047_word next;
		size_t k = end;
		size_t decoded_len = decoded->len;
		while (k < len && is_linear_space(s[k]))
			k++;
		if (!encoded_word_parse(s, len, k, &next, decoded))
			return end;
		if (next.charset_name_len != first->charset_name_len ||
		    strncasecmp(next.charset, first->charset, first->charset_name_len) != 0) {
			/* Another charset: its text is not ours to join; drop what it decoded. */
			text_truncate(decoded, decoded_len);
			return end;
		}
		end = next.end;
	}
}

/* May an encoded-word start at s[i]? RFC 2047 5: each word holds whole characters. */
static bool can_split_before(enum rfc2047_charset kind, const char *s, size_t i)
{
	unsigned char c = (unsigned char)s[i];

	switch (kind) {
	case RFC2047_CHARSET_UTF8:
		return (c & 0xc0) != 0x80;
	case RFC2047_CHARSET_EUC:
		return c < 0x80 || (unsigned char)s[i - 1] < 0x80;
	default:
		return true;
	}
}

/* RFC 2047 5 (3): the characters safe as themselves in a Q word in any position. */
static bool q_literal(char c)
{
	return is_alnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(char c)
{
	return q_literal(c) || c == ' ' ? 1 : 3;
}

static void encoded_word_write(struct strbuf *out, const struct rfc2047_word *like,
	const char *s, size_t len)
{
	strbuf_append_str(out, "=?");
	strbuf_append(out, like->charset, like->charset_len);
	strbuf_appendf(out, "?%c?", like->encoding);
	if (like->encoding == 'B') {
		base64_encode(out, s, len);
	} else {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == ' ')
				strbuf_append_str(out, "_");
			else if (q_literal(s[i]))
				strbuf_append(out, s + i, 1);
			else
				strbuf_appendf(out, "=%02X", (unsigned char)s[i]);
		}
	}
	strbuf_append_str(out, "?=");
}

/* Writes text that took the place of encoded-words like `like`: as itself when it is
 * printable ASCII that cannot be taken for (part of) an encoded-word, else as encoded-words
 * in like's charset and encoding joined by folds. RFC 2047 2: a word is at most 75 octets
 * and a line holding one at most 76, so the first word is shortened by what its line
 * already holds. */
void rfc2047_text_write(struct strbuf *out, const struct rfc2047_word *like,
	enum rfc2047_charset kind, const char *s, size_t len, const char *newline)
{
	bool plain = true;

	for (size_t i = 0; plain && i < len; i++)
		plain = (s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\t';
	/* Nor may it make "=?" or "?=" with the octets around it. */
	if (plain && (len == 0 || (s[0] != '?' && s[len - 1] != '=' && !memmem(s, len, "=?", 2)))) {
		strbuf_append(out, s, len);
		return;
	}
	/* "=?" charset "?" X "?" text "?=": 7 octets besides the charset and the text. A charset
	 * name too long to leave room still gets words of one base64 quantum. */
	size_t overhead = 7 + like->charset_len;
	size_t word_budget = overhead + 4 < 75 ? 75 - overhead : 4;
	size_t column = 0;
	while (column < out->len && out->data[out->len - 1 - column] != '\n')
		column++;
	/* The room left on the current line, but never a first word too short to be useful. */
	size_t first_budget = column + overhead + 16 < 76 ? 76 - column - overhead : 16;
	size_t i = 0;
	while (i < len) {
		size_t budget = i == 0 && first_budget < word_budget ? first_budget : word_budget;
		size_t best = 0, q = 0;
		for (size_t j = i; j < len; j++) {
			size_t n = j + 1 - i;
			q += q_cost(s[j]);
			if ((like->encoding == 'B' ? base64_encoded_length(n) : q) > budget)
				break;
			if (j + 1 == len || can_split_before(kind, s, j + 1))
				best = j + 1;
		}
		if (best == 0) {
			/* Not even one character fits: write it whole rather than cut it. */
			best = i + 1;
			while (best < len && !can_split_before(kind, s, best))
				best++;
		}
		if (i > 0) {
			strbuf_append_str(out, newline);
			strbuf_append_str(out, " ");
		}
		encoded_word_write(out, like, s + i, best - i);
		i = best;
	}
}

