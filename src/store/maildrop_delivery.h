/* store/maildrop_delivery.h: delivery into the Maildir behind a MaildropPath (SMTP side, DSNs,
 * the owner's own mail to a local domain): a message is written to tmp/ as it arrives, then
 * committed: fsync(file) -> rename into new/ -> fsync(new/). Only after commit returns 0 may
 * the server say 250. Commit is blocking and is called from the worker pool, never the event
 * loop. */
#ifndef MAILPOPBOX_STORE_MAILDROP_DELIVERY_H
#define MAILPOPBOX_STORE_MAILDROP_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "bounds.h"
#include "fsutil.h"

/* The Maildir++ folder quarantined mail goes into (docs/smtp.md "Junk"): the SMTP side
 * publishes there, the push engine reads it, POP3 never lists it. */
#define MAILDROP_JUNK_FOLDER ".Junk"

/* ---- delivery ---- */

struct maildrop_delivery {
	struct fs_durable_file file; /* the tmp/ file (fsutil.h); file.fd -1 after prepare */
	char *maildrop_path;
	char *new_path;      /* its name in new/ once published, else NULL */
	char *unique;        /* unique base name (without ",S=" size suffix) */
	uint64_t written;    /* octets taken so far (some may still be in buf) */
	int error;           /* first errno seen by maildrop_delivery_write, 0 if none */
	char *buf;           /* octets not yet written to fd (MAILDROP_WRITE_BUFFER) */
	size_t buf_len;
	const char *folder;  /* Maildir++ folder publish renames into (MAILDROP_JUNK_FOLDER),
	                      * NULL: INBOX */
};

/* Creates MaildropPath and its tmp/ new/ cur/ if missing (mode 0700) and opens a new file in
 * tmp/ with a unique Maildir name (time, microseconds, pid, counter, hostname).
 * Returns 0, or -1 with errno set (d is then untouched). */
int maildrop_delivery_begin(struct maildrop_delivery *d, const char *maildrop_path);
/* Appends len octets. Errors are remembered in d->error (and further writes skipped) so the
 * caller checks once at the end. Returns 0 or -1. */
int maildrop_delivery_write(struct maildrop_delivery *d, const void *data, size_t len);
/* Writes out what is buffered, so file.fd holds every octet taken (a reader such as the
 * milter client reads it from offset 0). Returns 0, or -1 with errno (also in d->error). */
int maildrop_delivery_flush(struct maildrop_delivery *d);
/* A read-only descriptor of the tmp/ file (close it after use), or -1 with errno. */
int maildrop_delivery_open_read(const struct maildrop_delivery *d);
/* Copies the first octets of what was taken (at most size) into out: the file's head, for
 * the sender checks. Returns the count, or -1 with errno. */
ssize_t maildrop_delivery_read_head(struct maildrop_delivery *d, char *out, size_t size);
/* Replaces the first old_head_len octets taken by new_head (new_len octets): the head of the
 * message (trace headers and header section) after the sender checks' edits. Still in the
 * buffer: edited there; already in the file: a new tmp/ file takes the new head and the rest
 * of the old one (copy_file_range), and replaces it. d->written follows, so the ",S=" size
 * stays right. Returns 0, or -1 with errno (also in d->error: the commit then fails). */
int maildrop_delivery_replace_head(struct maildrop_delivery *d, size_t old_head_len,
	const char *new_head, size_t new_len);

/* fsync the file, rename tmp/NAME -> new/NAME,S=<size>, fsync new/: prepare, then publish.
 * Returns 0, or -1 with errno set; on failure the tmp file is removed (no partial file is left
 * anywhere). Blocking. */
int maildrop_delivery_commit(struct maildrop_delivery *d);

/* Two phases, for a message that must reach several places or none (a transaction to two
 * maildrops, or to a maildrop and the outbound spool):
 *   prepare   write out and fsync the tmp/ file and close it; nothing is visible yet. Most
 *             failures (a full disk, an I/O error) happen here.
 *   publish   rename it into new/ (d->folder set: the Maildir++ folder's new/, the folder
 *             made with tmp/ new/ cur/ and a maildirfolder file on first use) and fsync
 *             new/: from then on readers see the message.
 *   unpublish take a published message back (unlink + fsync new/) because another part of
 *             the transaction failed, so the client's 4xx stays true.
 * prepare and publish return 0, or -1 with errno and nothing of d left on disk. Blocking. */
int maildrop_delivery_prepare(struct maildrop_delivery *d);
int maildrop_delivery_publish(struct maildrop_delivery *d);
/* Returns 0, or -1 with errno (the message may then survive a crash; it is logged). */
int maildrop_delivery_unpublish(struct maildrop_delivery *d);
/* The whole transaction over count deliveries: prepare them all, then publish them all;
 * when any step fails, the published ones are unpublished and the rest aborted, so either
 * every maildrop has the message or none has. Returns 0, or -1 with errno of the first
 * failure. A crash between two renames still leaves the first copy: see docs/smtp.md. */
int maildrop_deliveries_commit(struct maildrop_delivery *ds, size_t count);
/* Closes and unlinks the tmp file (message refused or connection lost). Never fails. */
void maildrop_delivery_abort(struct maildrop_delivery *d);
/* Frees memory held by d (after commit or abort). */
void maildrop_delivery_release(struct maildrop_delivery *d);

/* Creates MaildropPath and tmp/ new/ cur/ as needed (mode 0700); a directory created is only
 * known to survive a crash once its parent has been fsync'd, so that is done too. Returns 0,
 * or -1 with errno. */
int maildrop_create(const char *maildrop_path);
/* Removes the files in tmp/ that a dead delivery left (untouched for 36 hours as of now,
 * MAILDROP_TMP_STALE_SECONDS); maildrop_open does it with the lock held. */
void maildrop_clean_tmp(const char *maildrop_path, time_t now);
/* At server start, before any delivery of this process began: removes the files in tmp/
 * whose names this server's naming scheme made on this host for a process that no longer
 * runs (or for this very pid, reused after a reboot): unfinished deliveries of an earlier run
 * that was killed. Any other file keeps the 36-hour rule. Returns the number removed. */
unsigned maildrop_recover_tmp(const char *maildrop_path);

#endif
