/* smtp/address.h: parsing of the MAIL FROM / RCPT TO argument: the path in angle brackets
 * (RFC 5321 4.1.2), with source routes dropped, and the ESMTP parameters after it. Pure. */
#ifndef MAILPOPBOX_SMTP_ADDRESS_H
#define MAILPOPBOX_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"

struct smtp_param {
	const char *key;   /* points into the parsed line; key_len octets */
	size_t key_len;
	const char *value; /* NULL when the parameter has no "=value" */
	size_t value_len;
};

struct smtp_path {
	bool null_path;                 /* "<>" */
	char address[SMTP_PATH_MAX + 1]; /* "local@domain" as given (quotes kept), NUL-terminated */
	size_t local_len;               /* octets of the local-part at the start of address */
	const char *domain;             /* points into address, after the '@' */
	size_t domain_len;
	bool utf8;                      /* contains octets >= 0x80 (needs SMTPUTF8, RFC 6531) */
};

enum smtp_path_status {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,     /* 501 5.1.3 / 501 5.5.4 */
	SMTP_PATH_TOO_LONG,   /* 501 5.1.3 (RFC 5321 4.5.3.1) */
	SMTP_PATH_PARAMS,     /* 555 5.5.4: too many or malformed parameters */
};

/* Parses "<path> [params]" (arg without the "FROM:"/"TO:" keyword, len octets). allow_null
 * accepts "<>" (MAIL FROM). Params point into arg. */
enum smtp_path_status smtp_path_parse(const char *arg, size_t len, bool allow_null,
	struct smtp_path *path, struct smtp_param *params, size_t *param_count);

/* Writes "local@domain" with a quoted local-part unquoted and its quoted-pairs resolved
 * (RFC 5321 4.1.2: "a"@d and a@d are the same mailbox), for comparisons such as
 * BlockedAddresses. Truncates to size (NUL-terminated). */
void smtp_path_canonical(const struct smtp_path *path, char *out, size_t size);

/* RFC 5321 4.1.2 Domain or address-literal; used for EHLO/HELO names too. */
bool smtp_domain_valid(const char *s, size_t len);

#endif
