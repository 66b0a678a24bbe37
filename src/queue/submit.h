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

struct submission {
	/* Set by the glue, on the event loop, before submission_commit. */
	const struct config *cfg;
	const struct server_config *submitter; /* the authenticated Server */
	struct dkim_signer *signer;            /* its DKIM key, or NULL */
	char queue_id[32];
	char sender[SMTP_PATH_MAX + 1];        /* MAIL FROM (send-as may replace it) */
	struct smtp_rcpt *rcpts;               /* a copy of the transaction's recipients */
	size_t rcpt_count;
	enum smtp_dsn_ret ret;
	char envid[SMTP_ENVID_MAX + 1];
	bool body_8bit, smtputf8;
	struct strbuf received;                /* our "Received:" field for this hop */
	time_t now;

	/* The message as received. */
	char *raw_path;
	int raw_fd;
	int write_error;

	/* Results of submission_commit. */
	enum submit_result result;
	int error;          /* errno of a SUBMIT_TEMPFAIL (ENOSPC: the disk is full) */
	const char *reject_reply;
	bool queued;        /* an outbound spool entry was made */
	bool sendas;        /* send-as changed the sender */
	bool signed_dkim;
	size_t local_count; /* maildrops written */
};

/* Fills the input fields from the session's transaction and opens tmp/ID.raw in SpoolPath.
 * Returns 0, or -1 with errno (sub then holds nothing to free). */
int submission_begin(struct submission *sub, const struct config *cfg,
	const struct smtp_tx *tx, struct dkim_signer *signer, time_t now);
/* Appends message octets as they arrive (errors are kept for commit). */
void submission_write(struct submission *sub, const void *data, size_t len);
/* Blocking. Sets result (and the other result fields). */
void submission_commit(struct submission *sub);
/* Removes the raw file and frees everything. */
void submission_free(struct submission *sub);

#endif
