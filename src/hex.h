/* hex.h: the value of one hexadecimal digit, for the decoders of %XX and =XX escapes
 * (push/authorize.c's form decoding, push/journal.c's keys, mail/rfc2047.c's Q encoding).
 * RFC 3461's xtext allows upper case only and keeps its own (mail/dsn_params.c). */
#ifndef MAILPOPBOX_HEX_H
#define MAILPOPBOX_HEX_H

/* 0..15 for 0-9, a-f, A-F; -1 for anything else. */
static inline int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
