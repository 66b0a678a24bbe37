/* push/imap_client.h: an IMAP client for push delivery (RFC 9051 APPEND into a mailbox over
 * TLS). Blocking with deadlines; runs on the push engine's thread only. */
#ifndef MAILPOPBOX_PUSH_IMAP_CLIENT_H
#define MAILPOPBOX_PUSH_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "push/transport.h"

struct imap_client_options {
	const char *host; int port; enum destination_tls tls; const char *ca_file; /* NULL: system */
	const char *username;
	const char *password;       /* or NULL with an access token given to imap_client_login */
	const char *mailbox;        /* "INBOX" */
	const char *junk_mailbox;   /* "Junk" (issue 14; may be NULL now) */
};
struct imap_client *imap_client_new(const struct imap_client_options *options);
void imap_client_free(struct imap_client *c);            /* LOGOUT if connected, closes */
bool imap_client_connected(const struct imap_client *c); /* false after any connection error */
/* Connects (TCP, implicit TLS or STARTTLS, certificate and host name/IP verified), reads the
 * capabilities, logs in: LOGIN/AUTHENTICATE PLAIN with the password, or XOAUTH2/OAUTHBEARER with
 * access_token when options->password is NULL. PUSH_AUTH when the server refuses the login. */
enum push_status imap_client_login(struct imap_client *c, const char *access_token,
	char *err, size_t errsz);
/* Appends items[0..count) to the mailbox (or junk_mailbox for item->junk), pipelined with
 * LITERAL+/LITERAL- when offered, else one synchronising literal at a time; fills each item's
 * status/detail/remote_id (APPENDUID). Returns PUSH_OK when the connection is still usable, or the
 * connection-level failure (items not answered keep status PUSH_TEMPORARY). */
enum push_status imap_client_append(struct imap_client *c, struct push_item *items, size_t count,
	char *err, size_t errsz);
/* UID SEARCH HEADER Message-ID in the mailbox (EXAMINE first): *found set. */
enum push_status imap_client_find(struct imap_client *c, const char *message_id, bool junk,
	bool *found, char *err, size_t errsz);

#endif
