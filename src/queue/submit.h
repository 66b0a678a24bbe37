/* queue/submit.h: the owner's authenticated mail, made final and stored. While DATA arrives
 * the message is written as received to SpoolPath/tmp/ID.raw; at the end of data
 * submission_commit() (blocking: the worker pool) applies send-as, adds Date and Message-ID
 * when missing, DKIM-signs for the sender's domain, then stores the result durably in the
 * maildrop of every local recipient and, for remote recipients, as one outbound spool entry:
 * all of them or none. Only after it returns SUBMIT_OK may the server say 250, and only then
 * may the spool entry be handed to the scheduler. */
#ifndef MAILPOPBOX_QUEUE_SUBMIT_H
#define MAILPOPBOX_QUEUE_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "smtp/session.h"
#include "strbuf.h"

struct dkim_signer;

enum submit_result {
	SUBMIT_OK,
	SUBMIT_TEMPFAIL, /* 451 (452 for a full disk): nothing of the message is kept */
	SUBMIT_REJECTED, /* 5xx in reject_reply: the message cannot be sent as it is */
};

/* What submission_commit() did, for the reply and the log. */
struct submission_outcome {
	enum submit_result result;
	int error;                /* errno of a SUBMIT_TEMPFAIL (ENOSPC: the disk is full) */
	const char *reject_reply; /* the 5xx line of a SUBMIT_REJECTED */
	const char *sender;       /* the envelope sender as sent (send-as may have replaced it) */
	bool queued;              /* an outbound spool entry was made: hand it to the scheduler */
	bool sendas;              /* send-as changed the sender */
	bool signed_dkim;
	size_t local_count;       /* maildrops written */
};

/* One message being submitted; its fields are submit.c's own. */
struct submission;

/* Copies what it needs of the session's transaction (queue id, sender, recipients, DSN
 * parameters) and of received (our "Received:" field for this hop), and opens tmp/ID.raw in
 * SpoolPath for the message as it arrives. Returns the submission, or NULL with errno. */
struct submission *submission_begin(const struct config *cfg, const struct smtp_tx *tx,
	struct dkim_signer *signer, const struct strbuf *received, time_t now);
/* Appends message octets as they arrive (errors are kept for commit). */
void submission_write(struct submission *sub, const void *data, size_t len);
/* Blocking. Fills the outcome. */
void submission_commit(struct submission *sub);
/* Valid after submission_commit, until submission_free. */
const struct submission_outcome *submission_outcome(const struct submission *sub);
/* Removes the raw file and frees the submission. NULL is allowed. */
void submission_free(struct submission *sub);

#endif
