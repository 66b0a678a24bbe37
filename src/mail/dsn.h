/* mail/dsn.h: composing delivery status notifications: an RFC 3464 delivery-status report in
 * an RFC 6522 multipart/report, with a human-readable first part and the original message or
 * its header section (RFC 3461 4.3 RET) as the third part. Pure: strings in, a message out.
 *
 * Using it (the glue):
 *   char boundary[DSN_BOUNDARY_MAX + 1];
 *   dsn_compose(&report, out, boundary);      headers, parts 1 and 2, and part 3's MIME header
 *                                             (plus the original header section for
 *                                             DSN_RETURN_HEADERS)
 *   for DSN_RETURN_FULL: append msg/ID as it is (CRLF lines) after out
 *   dsn_compose_end(boundary, out);           the closing delimiter
 * The result is delivered with a null reverse-path (RFC 3461 6.1, RFC 5321 4.5.5: a DSN is
 * never answered by another DSN) into the sender domain's maildrop, with the usual trace headers in front. */
#ifndef MAILPOPBOX_MAIL_DSN_H
#define MAILPOPBOX_MAIL_DSN_H

#include "bounds.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "strbuf.h"

/* RFC 2046 5.1.1: a boundary is 1 to 70 characters. */
#define DSN_BOUNDARY_MAX 70
/* Tokens name the report: Message-ID <token@host> and the default boundary. */
#define DSN_TOKEN_MAX 48

/* RFC 3464 2.3.3 Action field. */
enum dsn_action {
	DSN_ACTION_FAILED,    /* given up: Status 5.x.x (or 4.x.x when it expired) */
	DSN_ACTION_DELAYED,   /* still trying (NOTIFY=DELAY) */
	DSN_ACTION_DELIVERED, /* delivered here or by a server that takes it from there */
	DSN_ACTION_RELAYED,   /* handed to a server without DSN support (RFC 3461 5.2.2) */
	DSN_ACTION_EXPANDED,  /* delivered to a list/alias (RFC 3461 5.2.7) */
};

/* What the third part carries. */
enum dsn_return {
	DSN_RETURN_HEADERS, /* text/rfc822-headers: the original header section */
	DSN_RETURN_FULL,    /* message/rfc822: the caller appends the whole message */
};

struct dsn_recipient {
	const char *address;     /* Final-Recipient: rfc822; ADDRESS */
	const char *original;    /* ORCPT, xtext-decoded ("rfc822;x@y"): Original-Recipient, or
				  * NULL (RFC 3464 2.3.1: only when ORCPT was given) */
	enum dsn_action action;
	const char *status;      /* RFC 3463 "5.1.1"; NULL or malformed: 5.0.0 / 4.0.0 / 2.0.0 */
	const char *diagnostic;  /* "smtp; 550 5.1.1 no such user" for a remote reply, or
				  * "TYPE; text" for anything else ("dns; NXDOMAIN"), or NULL */
	const char *remote_mta;  /* host that replied (Remote-MTA: dns; HOST), or NULL */
	time_t last_attempt;     /* Last-Attempt-Date, 0 = none */
	time_t will_retry_until; /* Will-Retry-Until, delayed only, 0 = none */
};

struct dsn_report {
	const char *reporting_mta;   /* our Hostname: From, Message-ID, Reporting-MTA */
	const char *token;           /* unique, [A-Za-z0-9._-], 1..DSN_TOKEN_MAX */
	const char *boundary;        /* NULL: derived from the token; make the token (or this)
				      * unpredictable so no returned message can contain it */
	const char *queue_id;        /* shown in the text part, or NULL */
	const char *sender;          /* the envelope sender being told (To:), never "" */
	const char *envid;           /* RFC 3461 ENVID, xtext-decoded, or NULL */
	time_t date;                 /* Date: of the report */
	time_t arrival_date;         /* when we accepted the message (Arrival-Date) */
	enum dsn_return returned;
	const char *original_headers; /* DSN_RETURN_HEADERS: the message's first octets (cut at the
				       * empty line here; more is fine) */
	size_t original_headers_len;
	bool original_8bit;          /* the original has 8-bit octets (BODY=8BITMIME/SMTPUTF8) */
	const struct dsn_recipient *recipients;
	size_t recipient_count;      /* at least one */
};

/* Appends the report up to the third part's content to out (see the top of this file) and
 * stores the boundary used. Returns 0, or -1 with out untouched when the report is unusable
 * (no recipients, empty sender, bad token or boundary, no reporting MTA). */
int dsn_compose(const struct dsn_report *r, struct strbuf *out,
	char boundary[DSN_BOUNDARY_MAX + 1]);
/* Appends the closing delimiter (after the returned message or headers). */
void dsn_compose_end(const char *boundary, struct strbuf *out);

/* RFC 3461 4.3: RET=HDRS returns only headers; RET=FULL or no RET (our choice, as Postfix)
 * returns the whole message, but only in a report with a failure: delay and success reports
 * are notices, not returns, so they carry the headers. */
enum dsn_return dsn_return_for(bool ret_hdrs, const struct dsn_recipient *recipients,
	size_t count);

/* "failed", "delayed", "delivered", "relayed", "expanded". */
const char *dsn_action_name(enum dsn_action action);

#endif
