/* queue/spool.h: the on-disk outbound queue under SpoolPath: one immutable message file and one
 * JSON envelope (sender, DSN parameters, per-recipient state) per queued message.
 *
 * Layout:
 *   SpoolPath/tmp/ID          message being received (spool_message_begin .. commit)
 *   SpoolPath/tmp/ID.env.P.N  envelope being written (renamed over env/ID when synced)
 *   SpoolPath/msg/ID          the message, never changed once queued
 *   SpoolPath/env/ID          the envelope; an entry exists (is durable) exactly when this does
 *
 * Durability: the message is fsync'd and renamed into msg/ (msg/ fsync'd) before the envelope
 * is written (tmp file fsync'd, renamed into env/, env/ fsync'd). Only when spool_message_commit
 * returns 0 may the server say 250. Removal unlinks env/ID first, so a crash in between leaves an
 * orphan message, never an envelope pointing at nothing; spool_recover() deletes orphans.
 *
 * Every function here that touches the disk blocks (worker pool, or startup). Nothing here
 * locks: the scheduler owns an entry while it updates it, and readers see either the old or
 * the new envelope thanks to rename(2). */
#ifndef MAILPOPBOX_QUEUE_SPOOL_H
#define MAILPOPBOX_QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fsutil.h"
#include "mail/dsn_params.h"

/* Queue ids are file names: 1..SPOOL_ID_MAX of [A-Za-z0-9._-], not starting with '.'
 * (daemon_new_id() makes 15 hex digits). */
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

/* ---- the spool on disk (blocking) ---- */

/* mkdir -p SpoolPath and tmp/ msg/ env/ (0700), fsync'ing each parent that got a new entry.
 * Returns 0, or -1 with a message in err. */
int spool_init(const char *spool_path, char *err, size_t errsz);

/* Receiving a message: begin opens tmp/ID (O_EXCL), write appends (the first error is kept in
 * m->error and later writes are skipped, so check once at commit), commit makes the entry
 * durable, abort throws the message away. */
struct spool_message {
	struct fs_durable_file file; /* tmp/ID (fsutil.h); file.fd -1 after prepare/commit/abort */
	char *spool_path;
	char *id;
	uint64_t written;    /* octets written so far */
	int error;           /* first errno seen by spool_message_write, 0 if none */
};

/* Returns 0, or -1 with errno (EINVAL for a bad id; m untouched). */
int spool_message_begin(struct spool_message *m, const char *spool_path, const char *id);
int spool_message_write(struct spool_message *m, const void *data, size_t len);
/* The first half of commit: fsync and close the tmp/ file, so what can fail for lack of space
 * or a bad disk fails before anything of the transaction is visible. Returns 0, or -1 with
 * errno (the tmp file is then removed). */
int spool_message_prepare(struct spool_message *m);
/* (prepare, if not done) + rename tmp/ID -> msg/ID + fsync msg/, then writes env/ID from e
 * atomically (with
 * e->size replaced by m->written). e->id must equal the id given to begin. Returns 0 once the
 * entry is durable; -1 with errno otherwise, and then nothing of it is left in the spool
 * (EEXIST: an entry with this id is already queued). Closes the file either way. */
int spool_message_commit(struct spool_message *m, const struct spool_entry *e);
/* Closes and unlinks the tmp file. Never fails. */
void spool_message_abort(struct spool_message *m);
/* Frees memory held by m (after commit or abort; aborts if still open). */
void spool_message_release(struct spool_message *m);

/* Replaces env/ID with e (tmp + fsync + rename + fsync env/): a reader or a crash sees the old
 * or the new envelope, never a mix. Returns 0, or -1 with errno (ENOENT: the entry is gone;
 * EINVAL: e has an invalid id, or sender/address/orcpt/envid is not valid UTF-8 — the SMTP
 * session must not accept such values). JSON can only hold UTF-8, so in the free text fields
 * (last_error, status, remote_mta, which come from remote servers) each invalid octet is stored
 * as '?' instead of failing the save. */
int spool_save(const char *spool_path, const struct spool_entry *e);

/* Reads env/ID into e (which the caller frees with spool_entry_free). Returns 0, or -1 with
 * errno (ENOENT: no such entry; EINVAL: corrupt) and a message naming the file in err; e is
 * then untouched. Never crashes on any file content. */
int spool_load(const char *spool_path, const char *id, struct spool_entry *e, char *err,
	size_t errsz);

/* The ids of all entries (those with an envelope), sorted. Free with spool_list_free.
 * Returns 0, or -1 with errno. */
int spool_list(const char *spool_path, char ***ids, size_t *count);
void spool_list_free(char **ids, size_t count);

/* Unlinks env/ID (the entry is gone from then on), fsyncs env/, then unlinks msg/ID and fsyncs
 * msg/. An entry that is already gone is not an error. Returns 0, or -1 with errno. */
int spool_remove(const char *spool_path, const char *id);

/* At startup, before anything is received or delivered: deletes everything in tmp/ (messages
 * and envelopes half written when we stopped) and every msg/ID without env/ID (a crash between
 * the two renames of commit, or inside spool_remove). Logs what it removes, and warns about
 * envelopes without a message (left for the scheduler to fail). Returns the number of files
 * removed, or -1 if a directory could not be read. */
int spool_recover(const char *spool_path);

/* "SpoolPath/msg/ID" (caller frees). */
char *spool_message_path(const char *spool_path, const char *id);

#endif
