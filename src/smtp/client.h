/* smtp/client.h: the SMTP client protocol core used by the outbound queue (RFC 5321, with
 * RFC 2920 PIPELINING, RFC 3207 STARTTLS, RFC 4954/4616 AUTH PLAIN, RFC 1870 SIZE, RFC 6152
 * 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 3463 enhanced status codes). A pure state
 * machine for one mail transaction on one connection: reply lines in, command text out (into a
 * strbuf) and an action for the glue. It owns no socket and no file.
 *
 * Driving it (the glue):
 *   c = smtp_client_new(&params);
 *   if (smtp_client_finished(c)) -> nothing to send (every recipient already has a result,
 *                                   e.g. an unusable address): do not connect.
 *   connect; smtp_client_set_remote_host(c, "mx1.example.net") (for Remote-MTA, RFC 3464 2.3.5);
 *   for each reply line read (CRLF stripped; a line longer than SMTP_REPLY_LINE_MAX is passed
 *   with its first SMTP_REPLY_LINE_MAX + 1 octets, it is an error anyway):
 *     action = smtp_client_feed_line(c, line, len, out);
 *     always write out to the socket first (it may be empty), then:
 *     SMTP_CLIENT_ACTION_NONE:      read more reply lines.
 *     SMTP_CLIENT_ACTION_STARTTLS:  discard every byte already read after this line (RFC 3207
 *                                   5: a reply injected before the handshake must not be taken
 *                                   as coming over TLS), do the TLS handshake, then call
 *                                   smtp_client_tls_started(c, out) and write out (EHLO again).
 *                                   A handshake failure: smtp_client_connection_failed().
 *     SMTP_CLIENT_ACTION_SEND_BODY: stream the message (dot-stuffed, RFC 5321 4.5.2, ending with
 *                                   "\r\n.\r\n"), then smtp_client_body_sent(c) and read the
 *                                   final reply.
 *     SMTP_CLIENT_ACTION_DONE:      close the connection once out is written.
 *   Connect error, timeout, TLS failure or unexpected close: smtp_client_connection_failed(c,
 *   "why") (after it the client is finished).
 *   When finished, smtp_client_result(c, i) gives each recipient's outcome, in the order of
 *   params.recipients; then smtp_client_free(c).
 *
 * Every recipient ends DELIVERED, TEMPFAIL or PERMFAIL (never PENDING once finished). */
#ifndef MAILPOPBOX_SMTP_CLIENT_H
#define MAILPOPBOX_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "strbuf.h"

/* Room for a result's text: the reply (continuation lines joined with spaces), truncated. */
#define SMTP_CLIENT_TEXT_MAX 512

enum smtp_client_tls {
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* STARTTLS when offered; if it fails, carry on in clear */
	SMTP_CLIENT_TLS_REQUIRED,      /* no TLS, no mail: TEMPFAIL */
	SMTP_CLIENT_TLS_NEVER,         /* never send STARTTLS */
};

struct smtp_client_params {
	const char *helo_name;              /* our host name for EHLO/HELO */
	const char *sender;                 /* envelope sender without <>; "" for the null path */
	const char *const *recipients;      /* recipient_count addresses without <> */
	size_t recipient_count;             /* at least 1 */
	/* RFC 3461 parameters in wire form (ORCPT and ENVID already xtext-encoded, RFC 3461 4),
	 * sent only when the remote offers DSN; a malformed value is left out. */
	const char *const *notify;          /* NULL, or per recipient NULL or "SUCCESS,DELAY".. */
	const char *const *orcpt;           /* NULL, or per recipient NULL or "rfc822;bob@x" */
	const char *ret;                    /* NULL, "FULL" or "HDRS" */
	const char *envid;                  /* NULL or the envelope id */
	unsigned long long message_size;    /* octets, for SIZE= (RFC 1870) */
	bool message_8bit;                  /* the body has 8-bit octets: BODY=8BITMIME */
	bool needs_smtputf8;                /* UTF-8 headers; UTF-8 addresses are detected too */
	enum smtp_client_tls tls;
	bool tls_active;                    /* implicit TLS (e.g. a smarthost on port 465) */
	const char *auth_user;              /* NULL, or AUTH PLAIN credentials (smarthost) */
	const char *auth_password;
};

enum smtp_client_action {
	SMTP_CLIENT_ACTION_NONE,      /* write out (if any), wait for more reply lines */
	SMTP_CLIENT_ACTION_STARTTLS,  /* 220 to STARTTLS: start the handshake */
	SMTP_CLIENT_ACTION_SEND_BODY, /* 354: stream the message, then smtp_client_body_sent() */
	SMTP_CLIENT_ACTION_DONE,      /* write out, then close */
};

enum smtp_client_status {
	SMTP_CLIENT_PENDING,
	SMTP_CLIENT_DELIVERED, /* 2xx to the end of data (RFC 5321 4.1.1.4) */
	SMTP_CLIENT_TEMPFAIL,  /* 4xx, connection-level failure: retry later */
	SMTP_CLIENT_PERMFAIL,  /* 5xx or a permanent local decision: bounce */
};

struct smtp_client_result {
	enum smtp_client_status status;
	/* The reply code when the status is the remote's reply ("smtp; <text>" in a DSN's
	 * Diagnostic-Code, RFC 3464 2.3.6); 0 when it is our own decision or a connection
	 * failure, and text then says what happened. */
	int code;
	/* RFC 3463 status ("5.1.1"): the remote's, or derived from the code (X.0.0), or ours. */
	char enhanced[16];
	char text[SMTP_CLIENT_TEXT_MAX]; /* printable ASCII */
	/* The host given to smtp_client_set_remote_host when the result was decided ("" if
	 * none), for Remote-MTA. */
	char remote_host[SMTP_DOMAIN_MAX + 1];
	/* The failure is the host's, not the recipient's or the message's (connection, greeting,
	 * EHLO, TLS, AUTH, protocol error, 421): another MX host may do better (RFC 5321 5.1). */
	bool host_failure;
};

struct smtp_client;

/* The strings and arrays of params must outlive the client. Aborts (fatal) on NULL pointers
 * or no recipients; bad addresses or a bad helo_name become results instead. */
struct smtp_client *smtp_client_new(const struct smtp_client_params *params);
void smtp_client_free(struct smtp_client *c);

void smtp_client_set_remote_host(struct smtp_client *c, const char *host);
/* One reply line without its CRLF. */
enum smtp_client_action smtp_client_feed_line(struct smtp_client *c, const char *line,
	size_t len, struct strbuf *out);
/* The TLS handshake after SMTP_CLIENT_ACTION_STARTTLS succeeded: EHLO again (RFC 3207 4.2). */
void smtp_client_tls_started(struct smtp_client *c, struct strbuf *out);
/* The body and its terminating "." were written after SMTP_CLIENT_ACTION_SEND_BODY. */
void smtp_client_body_sent(struct smtp_client *c);
/* The connection is gone or unusable: every recipient still pending becomes TEMPFAIL. */
void smtp_client_connection_failed(struct smtp_client *c, const char *why);

/* True when nothing more will happen: every recipient has its final result. */
bool smtp_client_finished(const struct smtp_client *c);
size_t smtp_client_recipient_count(const struct smtp_client *c);
const struct smtp_client_result *smtp_client_result(const struct smtp_client *c, size_t i);
/* The last EHLO reply offered DSN (RFC 3461 4): the remote takes over the NOTIFY duties;
 * otherwise a NOTIFY=SUCCESS recipient gets a "relayed" DSN from us (RFC 3461 5.2.2). */
bool smtp_client_remote_supports_dsn(const struct smtp_client *c);
bool smtp_client_tls_active(const struct smtp_client *c);

#endif
