/* mail/rfc2047.h: RFC 2047 encoded-words ("=?charset?B?...?=") in header field values:
 * finding and decoding them, joining adjacent words of one charset, and writing text back as
 * encoded-words of the same charset and encoding, folded to RFC 2047's lengths. Used by
 * send-as (mail/sendas.c) to find and remove its Subject tag. Pure: no I/O. */
#ifndef MAILPOPBOX_MAIL_RFC2047_H
#define MAILPOPBOX_MAIL_RFC2047_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* How far a charset's octets can be trusted to mean ASCII where they are ASCII. */
enum rfc2047_charset {
	RFC2047_CHARSET_OPAQUE,       /* unknown, or ASCII octets inside multi-octet characters */
	RFC2047_CHARSET_UTF8,
	RFC2047_CHARSET_SINGLE_OCTET, /* every octet a character */
	RFC2047_CHARSET_EUC,          /* multi-octet characters made of octets >= 0x80 only */
};

struct rfc2047_word {
	size_t start;            /* the "=?" */
	size_t end;              /* after the "?=" */
	const char *charset;     /* as written, with an RFC 2231 5 "*language" */
	size_t charset_len;
	size_t charset_name_len; /* without the "*language" */
	char encoding;           /* 'B' or 'Q' */
};

/* The first encoded-word in s[from, len) (recognised even without whitespace around it, as
 * mail readers do), its text decoded onto decoded. False (decoded unchanged) if none. */
bool rfc2047_word_next(const char *s, size_t len, size_t from, struct rfc2047_word *w,
	struct strbuf *decoded);
/* Where the run of words that starts with first ends: the words after it in the same charset
 * with only whitespace between (RFC 2047 6.2: that whitespace is not displayed). decoded,
 * holding first's text, then holds the text of the whole run. */
size_t rfc2047_run_end(const char *s, size_t len, const struct rfc2047_word *first,
	struct strbuf *decoded);
/* How far w's charset can be trusted to mean ASCII where its octets are ASCII. */
enum rfc2047_charset rfc2047_charset_of(const struct rfc2047_word *w);
/* Appends s[0, len), text that takes the place of words like `like` (of charset kind): as
 * itself when it is printable ASCII that cannot be taken for an encoded-word, else as
 * encoded-words in like's charset and encoding, folded with newline and a space, each at
 * most 75 octets and lines at most 76 (RFC 2047 2). */
void rfc2047_text_write(struct strbuf *out, const struct rfc2047_word *like,
	enum rfc2047_charset kind, const char *s, size_t len, const char *newline);

#endif
