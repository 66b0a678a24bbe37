/* verify/verify.h: the sender checks of one message received on the MX port, run on the
 * worker at the end of DATA before the maildrop commit: SPF, DKIM, DMARC (the other verify/
 * headers), the Authentication-Results field that records them, then the milter
 * (filter/milter.h) if one is configured; the policy that turns the verdicts into a reply
 * and a folder; and the rewrite of every maildrop file's head with the header edits
 * (docs/smtp.md). */
#ifndef MAILPOPBOX_VERIFY_VERIFY_H
#define MAILPOPBOX_VERIFY_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "config.h"
#include "strbuf.h"
#include "verify/authres.h"

struct maildrop_delivery;
struct verify_dkim;

/* The envelope of the message, copied from the session on the event loop at DATA, so the
 * worker reads nothing the loop owns. */
struct verify_envelope {
	const struct config *cfg;  /* the connection's generation's */
	char client_ip[64];
	unsigned client_port;
	char helo[SMTP_DOMAIN_MAX + 1];
	char mail_from[SMTP_PATH_MAX + 1]; /* without <>, "" for a null sender */
	char **rcpts;                      /* without <>, owned */
	size_t rcpt_count;
	char queue_id[32];
	char tls[128];                     /* "" in clear */
};

enum verify_action {
	VERIFY_INBOX,    /* deliver into new/ */
	VERIFY_JUNK,     /* deliver into the maildrop's .Junk folder */
	VERIFY_REJECT,   /* 5xx: reply */
	VERIFY_TEMPFAIL, /* 4xx: reply */
	VERIFY_DISCARD,  /* 250 and keep nothing */
};

struct verify_outcome {
	enum verify_action action;
	char reply[MILTER_SMTP_REPLY_MAX]; /* reject, tempfail: the reply without the final CRLF */
	const char *reason;                /* for the log: "dmarc", "milter", or NULL */
	int error;                         /* the head rewrite failed with this errno: 451 */
};

/* Whether messages on this configuration are checked at all (sender checks or a milter). */
bool verify_enabled(const struct config *cfg);

/* Copies what the checks need from the session's transaction (on the event loop). */
struct smtp_session;
void verify_envelope_fill(struct verify_envelope *env, const struct smtp_session *session,
	const struct config *cfg);
void verify_envelope_free(struct verify_envelope *env);

/* Blocking (a worker). dkim: the verifier fed the message as received (may be NULL when
 * VerifySenders is off). ds[0..count): the message's maildrop files, complete and not
 * committed, trace_lens[i] the octets of ds[i]'s trace headers; for an inbox or junk outcome each file's head is rewritten (A-R prepended, forged
 * A-R removed, the milter's changes) and ds[i].folder set for junk. Logs the verdicts. */
void verify_message(const struct verify_envelope *env, struct verify_dkim *dkim,
	struct maildrop_delivery *ds, const size_t *trace_lens, size_t count,
	struct verify_outcome *out);

/* Pure, for the unit tests and verify_message: applies the edits to the head of one file.
 * head: the file's first head_len octets (trace headers and header section, parsed by the
 * caller's limits); authres_field: the field to prepend ("" for none); milter changes with
 * indices over authres_field + head as the milter saw the first file, shifted by
 * index_shift for the fields after position shift_from (this file's trace headers may be more
 * or fewer than the first file's). Appends the new head to out. */
struct milter_change;
void verify_rewrite_head(const char *authres_field, const char *head, size_t head_len,
	const char *hostname, const struct milter_change *changes, size_t change_count,
	size_t shift_from, long index_shift, struct strbuf *out);

#endif
