/* auth.h: checking the mailbox password of a Server. Shared by SMTP AUTH and POP3.
 * Plain passwords and crypt(3) hashes are compared in constant time; the caller never logs
 * them. */
#ifndef MAILPOPBOX_AUTH_H
#define MAILPOPBOX_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* The Server a login name belongs to: "mailbox@DOMAIN" (case-insensitive), or NULL. */
const struct server_config *auth_find_mailbox(const struct config *cfg, const char *user,
	size_t len);
/* True when password (len bytes, may contain any byte) is the Server's MailboxPassword, or
 * hashes to its MailboxPasswordHash (a password containing NUL never matches a hash). Takes the
 * same time whatever the bytes compared; a hash takes as long as its scheme and cost make it,
 * so callers run this on a worker thread. Thread-safe. */
bool auth_check_password(const struct server_config *server, const char *password, size_t len);
/* Decodes an RFC 4616 PLAIN message (already base64-decoded: authzid NUL authcid NUL passwd)
 * into pointers inside msg. Returns 0, or -1 when it is malformed. */
int auth_parse_plain(const char *msg, size_t len, const char **authzid, size_t *authzid_len,
	const char **authcid, size_t *authcid_len, const char **password, size_t *password_len);
/* A SASL response (RFC 4954 4): base64_decode (mail/base64.h) of in into out (capacity
 * outsz), except that "=" alone is the empty string. Returns the decoded length, or -1 for
 * bad input or too small a buffer. */
long auth_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

#endif
