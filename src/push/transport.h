/* push/transport.h: what the push engine (push/push.c) asks of a destination transport
 * (push/imap_client.c, push/gmail.c), and the verdicts they give back. The engine owns the
 * maildrop-as-queue (push/journal.c); a transport only talks to its destination. Transports
 * block with bounded deadlines and run on the engine's own thread, never on an event loop. */
#ifndef MAILPOPBOX_PUSH_TRANSPORT_H
#define MAILPOPBOX_PUSH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bounds.h"

enum push_status {
	PUSH_OK,        /* the destination confirmed (IMAP tagged OK; HTTP 200 with an id) */
	PUSH_TEMPORARY, /* network error, timeout, IMAP NO/BYE, HTTP 429/5xx: retry with backoff */
	PUSH_AUTH,      /* login refused, token revoked or expired for good: operator action */
	PUSH_REFUSED,   /* this message refused for good (too large, rejected content) */
};

/* One message offered to a destination. */
struct push_item {
	int fd;                    /* the maildrop file, open for reading, at offset 0 */
	uint64_t size;             /* its size in octets, as stored (CRLF line ends) */
	const char *message_id;    /* "<id@host>", or NULL when the message has none */
	time_t internal_date;      /* from its Date header, else the file's mtime */
	bool junk;                 /* goes to the Junk mailbox / SPAM label (issue 14) */
	/* Filled by the transport: */
	enum push_status status;
	char detail[PUSH_DETAIL_MAX + 1]; /* the destination's words, for logs; never secrets */
	char remote_id[PUSH_REMOTE_ID_MAX + 1]; /* Gmail message id or IMAP APPENDUID, or "" */
};

const char *push_status_name(enum push_status status); /* "ok", "temporary", ... */

#endif
