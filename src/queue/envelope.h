/* queue/envelope.h: a queued message's envelope: sender, DSN parameters and per-recipient
 * delivery state (struct spool_entry), and the JSON text of its env/ file (queue/spool.h)
 * both ways. Pure: no I/O, so the codec is unit-tested and fuzzed on its own. */
#ifndef MAILPOPBOX_QUEUE_ENVELOPE_H
#define MAILPOPBOX_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/dsn_params.h"

/* Queue ids are file names: 1..SPOOL_ID_MAX of [A-Za-z0-9._-], not starting with '.'
 * (ids_new() makes 15 hex digits). */
#define SPOOL_ID_MAX 64
/* Envelope format version written in "version"; a newer one is refused, not misread. */
#define SPOOL_ENVELOPE_VERSION 1

/* RFC 3461 4.1 NOTIFY keywords, as a bitmask. 0 means the parameter was absent, which is
 * not the same as FAILURE: an absent NOTIFY is relayed as absent (RFC 3461 5.2.1), and only
 * our local default (spool_notify_wants) treats it as FAILURE. */
enum spool_notify {
	SPOOL_NOTIFY_NEVER = DSN_NOTIFY_NEVER,
	SPOOL_NOTIFY_SUCCESS = DSN_NOTIFY_SUCCESS,
	SPOOL_NOTIFY_FAILURE = DSN_NOTIFY_FAILURE,
	SPOOL_NOTIFY_DELAY = DSN_NOTIFY_DELAY,
};

/* RFC 3461 4.3 RET: what a failure DSN returns of the message. */
enum spool_ret {
	SPOOL_RET_ABSENT = DSN_RET_ABSENT, /* not given: the reporting MTA chooses */
	SPOOL_RET_FULL = DSN_RET_FULL,
	SPOOL_RET_HDRS = DSN_RET_HDRS,
};

enum spool_recipient_state {
	SPOOL_RCPT_PENDING,   /* still to be delivered (maybe after temporary failures) */
	SPOOL_RCPT_DELIVERED, /* the remote said 250 to the end of data: never send again */
	SPOOL_RCPT_FAILED,    /* permanent failure (5xx, null MX, ...) */
	SPOOL_RCPT_EXPIRED,   /* failed because QueueLifetimeSeconds passed */
};

struct spool_recipient {
	char *address;         /* forward-path without <>, never NULL */
	char *orcpt;           /* RFC 3461 4.2 ORCPT, xtext-decoded "rfc822;x@y", or NULL */
	unsigned notify;       /* enum spool_notify bits; 0 = NOTIFY absent */
	enum spool_recipient_state state;
	bool reported;         /* the DSN for the final state (failed/expired/success) is done,
				* or none was due */
	bool delay_reported;   /* a "delayed" DSN was sent (RFC 3464 2.3.3: at most one wanted) */
	bool remote_dsn;       /* the accepting server offered DSN and got NOTIFY/ORCPT, so a
				* success report is its job (RFC 3461 5.2.1); without it we
				* owe a "relayed" report to NOTIFY=SUCCESS (5.2.2) */
	char *last_error;      /* "smtp; 451 4.3.0 try later", "dns; NXDOMAIN", or NULL */
	char *status;          /* RFC 3463 enhanced status "5.1.1", or NULL */
	char *remote_mta;      /* host name that gave the last reply, or NULL */
	int64_t last_attempt;  /* unix time of the last attempt for this recipient, 0 = none */
};

struct spool_entry {
	char *id;
	int64_t created;       /* unix time the message was queued (RFC 3464 Arrival-Date) */
	char *sender;          /* reverse-path without <>, "" for the null sender */
	char *sender_domain;   /* domain of sender ("" for the null sender): whose maildrop
				* gets the DSNs */
	enum spool_ret ret;
	char *envid;           /* RFC 3461 4.4 ENVID, xtext-decoded, or NULL */
	uint64_t size;         /* octets in msg/ID (set by spool_message_commit) */
	bool body_8bit;        /* BODY=8BITMIME (RFC 6152) */
	bool smtputf8;         /* SMTPUTF8 (RFC 6531) */
	unsigned attempts;     /* delivery runs so far */
	int64_t next_attempt;  /* unix time the scheduler should try again */
	int64_t last_attempt;  /* unix time of the last run, 0 = none */
	struct spool_recipient *recipients;
	size_t recipient_count;
};

/* ---- entries in memory (no I/O) ---- */

/* Fills e for a new message: created = next_attempt = now, sender_domain from sender, the
 * rest empty. sender may be "" (null reverse-path). */
void spool_entry_init(struct spool_entry *e, const char *id, const char *sender, int64_t now);
/* Appends a PENDING recipient; orcpt may be NULL; notify 0 = absent. Returns it (valid until
 * the next add). */
struct spool_recipient *spool_entry_add_recipient(struct spool_entry *e, const char *address,
	const char *orcpt, unsigned notify);
/* Replaces *field (one of the char * members above) with a copy of value (NULL allowed). */
void spool_set_string(char **field, const char *value);
/* Frees every string and the recipients, and zeroes e. */
void spool_entry_free(struct spool_entry *e);

/* Whether this recipient asked for a DSN of this kind (one SPOOL_NOTIFY_ bit): NEVER wins, and
 * an absent NOTIFY means FAILURE only (RFC 3461 4.1 leaves FAILURE or FAILURE,DELAY to the
 * MTA; we pick the quieter one). */
bool spool_notify_wants(const struct spool_recipient *r, unsigned kind);
/* "PENDING", "DELIVERED", "FAILED", "EXPIRED" (the envelope's and `mailpopbox queue`'s words). */
const char *spool_state_name(enum spool_recipient_state state);
/* Whether id is usable as a queue id (see SPOOL_ID_MAX). */
bool spool_id_valid(const char *id);

/* ---- the envelope file's text ---- */

/* The JSON text of e's envelope file, ending in a newline (caller frees), or NULL with errno
 * EINVAL when e holds what cannot be stored exactly (see spool_save in queue/spool.h). */
char *spool_envelope_format(const struct spool_entry *e);
/* Parses an envelope file's text (len octets, any content) for queue id id into e (freed by
 * the caller with spool_entry_free). Returns 0, or -1 with a message "FILE: WHERE: WHAT"
 * (file names the text's origin) in err and e untouched. Never crashes on any input. */
int spool_envelope_parse(const char *data, size_t len, const char *id, const char *file,
	struct spool_entry *e, char *err, size_t errsz);

#endif
