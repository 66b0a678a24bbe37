/* smtp/inbound.h: where a message received over SMTP goes: a maildrop file per target Server
 * (mail for our domains), or for the authenticated owner a submission (queue/submit.h).
 * Opened at DATA, fed the unstuffed data as it arrives, committed on a worker, and finished
 * on the event loop: the outcome is logged and answered through the core. */
#ifndef MAILPOPBOX_SMTP_INBOUND_H
#define MAILPOPBOX_SMTP_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "mail/headers.h"
#include "verify/verify.h"

struct generation;
struct maildrop_delivery;
struct queue;
struct smtp_session;
struct strbuf;
struct submission;
struct verify_dkim;

struct smtp_inbound {
	struct maildrop_delivery *deliveries; /* one per target Server, or none */
	size_t delivery_count;
	struct submission *submission;         /* the owner's mail, or NULL */
	bool commit_ok;
	int commit_error;                      /* errno of a failed commit */
	/* Received mail without a Message-ID gets one where its header section ends. */
	struct mail_message_id_scan message_id_scan;
	bool message_id_cr_held;               /* a CR the scan holds back (HOLD) */
	char message_id_field[SMTP_DOMAIN_MAX + 64]; /* "Message-ID: <...>" CRLF */
	/* MX mail with sender checks or a milter (verify/verify.h); NULL otherwise. */
	struct verify_envelope *verify;
	struct verify_dkim *dkim;              /* fed the data as received; NULL when off */
	size_t *trace_lens;                    /* octets of each file's trace headers */
	struct verify_outcome outcome;         /* set by the commit */
};

/* Opens the storage for the session's transaction (its queue id set), each maildrop file
 * starting with its trace headers. Returns 0, or -1 with errno (logged) and nothing open. */
int smtp_inbound_begin(struct smtp_inbound *m, struct smtp_session *session,
	struct generation *gen, time_t now);
void smtp_inbound_write(struct smtp_inbound *m, const void *data, size_t len);
/* Blocking (a worker): fsync and rename into every maildrop, or the submission's commit. */
void smtp_inbound_commit(struct smtp_inbound *m);
/* After the commit: logs the outcome for client, hands a queued submission to queue, and
 * gives the core the outcome (its reply in out). True when the message was kept. */
bool smtp_inbound_finish(struct smtp_inbound *m, struct smtp_session *session,
	const char *client, struct queue *queue, struct strbuf *out);
/* Drops what was received: nothing is kept. */
void smtp_inbound_abort(struct smtp_inbound *m);

#endif
