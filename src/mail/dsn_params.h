/* mail/dsn_params.h: the RFC 3461 parameters that ask for delivery status notifications
 * (RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT) and xtext, the encoding ENVID and ORCPT
 * travel in. The SMTP server parses them, the spool stores them, the SMTP client writes them
 * again; all three use these functions. Pure: no I/O. */
#ifndef MAILPOPBOX_MAIL_DSN_PARAMS_H
#define MAILPOPBOX_MAIL_DSN_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 3461 4.1 NOTIFY keywords as bits; 0 means the parameter was absent. */
enum dsn_notify {
	DSN_NOTIFY_NEVER = 1 << 0,
	DSN_NOTIFY_SUCCESS = 1 << 1,
	DSN_NOTIFY_FAILURE = 1 << 2,
	DSN_NOTIFY_DELAY = 1 << 3,
};
#define DSN_NOTIFY_ALL (DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | \
	DSN_NOTIFY_DELAY)

/* RFC 3461 4.3 RET: what a failure report returns of the message. */
enum dsn_ret {
	DSN_RET_ABSENT, /* not given: the reporting MTA chooses */
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

/* RFC 3461 4.1: "NEVER" alone, or a comma list of SUCCESS, FAILURE and DELAY, any case.
 * Sets *notify and returns true, or returns false (*notify untouched). */
bool dsn_notify_parse(const char *s, size_t len, unsigned *notify);
/* The wire form of notify ("SUCCESS,DELAY", keywords in RFC order), newly allocated, or NULL
 * for 0 (absent). */
char *dsn_notify_format(unsigned notify);
/* The keyword of one DSN_NOTIFY_ bit ("NEVER"...), or NULL. */
const char *dsn_notify_name(unsigned bit);
/* The bit of a keyword written exactly as dsn_notify_name gives it, or 0. */
unsigned dsn_notify_bit(const char *name);

/* RFC 3461 4.3: "FULL" or "HDRS", any case. Sets *ret and returns true, or returns false. */
bool dsn_ret_parse(const char *s, size_t len, enum dsn_ret *ret);
/* "FULL", "HDRS", or NULL for DSN_RET_ABSENT (and anything else). */
const char *dsn_ret_name(enum dsn_ret ret);

/* RFC 3461 4: decodes the xtext in[0..len) into out (capacity size, NUL-terminated). False
 * for an empty value, bad syntax (hexchar is "+" and two upper-case hex digits), a decoded
 * control octet (the value ends up in headers and logs), or no room (out is then
 * unspecified). */
bool dsn_xtext_decode(const char *in, size_t len, char *out, size_t size);
/* The xtext of s (newly allocated): "+", "=" and octets outside 0x21-0x7E as "+XX". */
char *dsn_xtext_encode(const char *s);
/* Whether s is non-empty xtext of at most max characters. */
bool dsn_xtext_valid(const char *s, size_t max);

/* The wire form of a decoded ORCPT ("rfc822;a+b@c" -> "rfc822;a+2Bb@c", RFC 3461 4.2): its
 * xtext, in which the usual addr-type and the ";" stay as they are. Newly allocated. */
char *dsn_orcpt_encode(const char *orcpt);
/* Decodes a wire ORCPT (RFC 3461 4.2: addr-type ";" xtext) as dsn_xtext_decode does, and
 * also refuses one without its ";" (out may then hold the refused value). */
bool dsn_orcpt_decode(const char *in, size_t len, char *out, size_t size);
/* Whether s is a wire ORCPT we may send: a non-empty addr-type, ";", a non-empty address, all
 * xtext, at most SMTP_ORCPT_MAX characters. */
bool dsn_orcpt_valid(const char *s);

#endif
