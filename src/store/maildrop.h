/* maildrop.h: the Maildir store behind each Server's MaildropPath.
 *
 * Delivery (SMTP side): a message is written to tmp/ as it arrives, then committed:
 * fsync(file) -> rename into new/ -> fsync(new/). Only after commit returns 0 may the server
 * say 250. Commit is blocking and is called from the worker pool, never the event loop.
 *
 * Listing and deletion (POP3 side): a maildrop is opened with an exclusive lock, its messages
 * (new/ and cur/ Maildir files plus the original Go server's flat "*.msg" files in MaildropPath
 * itself) are listed in arrival order with exact sizes and stable unique ids, and deletion
 * unlinks and fsyncs the directories. */
#ifndef MAILPOPBOX_STORE_MAILDROP_H
#define MAILPOPBOX_STORE_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <stdint.h>
#include <sys/types.h>

#include "bounds.h"
#include "fsutil.h"

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
};

/* Creates MaildropPath and its tmp/ new/ cur/ if missing (mode 0700) and opens a new file in
 * tmp/ with a unique Maildir name (time, microseconds, pid, counter, hostname).
 * Returns 0, or -1 with errno set (d is then untouched). */
int maildrop_delivery_begin(struct maildrop_delivery *d, const char *maildrop_path);
/* Appends len octets. Errors are remembered in d->error (and further writes skipped) so the
 * caller checks once at the end. Returns 0 or -1. */
int maildrop_delivery_write(struct maildrop_delivery *d, const void *data, size_t len);
/* fsync the file, rename tmp/NAME -> new/NAME,S=<size>, fsync new/: prepare, then publish.
 * Returns 0, or -1 with errno set; on failure the tmp file is removed (no partial file is left
 * anywhere). Blocking. */
int maildrop_delivery_commit(struct maildrop_delivery *d);

/* Two phases, for a message that must reach several places or none (a transaction to two
 * maildrops, or to a maildrop and the outbound spool):
 *   prepare   write out and fsync the tmp/ file and close it; nothing is visible yet. Most
 *             failures (a full disk, an I/O error) happen here.
 *   publish   rename it into new/ and fsync new/: from then on readers see the message.
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

/* ---- POP3 access ---- */

struct maildrop_message {
	char *path;                   /* full path of the file */
	uint64_t size;                /* RFC 1939 5: octets RETR sends before byte-stuffing; the
	                               * file size, except for legacy LF files (see maildrop_open) */
	uint64_t file_size;           /* octets in the file when listed */
	char uidl[POP3_UIDL_MAX + 1]; /* RFC 1939 unique-id, stable across sessions */
	bool deleted;                 /* marked by the POP3 session; removed on maildrop_commit_deletions */
};

struct maildrop {
	char *path;
	int lock_fd;
	struct maildrop_message *messages; /* arrival order, numbered 1..count in POP3 */
	size_t count;
};

enum maildrop_open_status {
	MAILDROP_OPEN_OK,
	MAILDROP_OPEN_LOCKED,  /* another session holds the lock: POP3 -ERR [IN-USE] */
	MAILDROP_OPEN_ERROR,   /* I/O error: POP3 -ERR [SYS/TEMP] */
};

/* Creates the Maildir if missing, takes an exclusive non-blocking flock on
 * MaildropPath/.mailpopbox.lock, and lists the messages. Maildir files are only stat'd; legacy
 * "*.msg" files are read once, since their bare LF line ends go out as CRLF (mail/dotstuff.h).
 * Blocking (worker pool). */
enum maildrop_open_status maildrop_open(struct maildrop *md, const char *maildrop_path);
/* Removes the files in tmp/ that a dead delivery left (untouched for 36 hours as of now,
 * MAILDROP_TMP_STALE_SECONDS); maildrop_open does it with the lock held. */
void maildrop_clean_tmp(const char *maildrop_path, time_t now);
/* At server start, before any delivery of this process began: removes the files in tmp/
 * whose names this server's naming scheme made on this host for a process that no longer
 * runs (or for this very pid, reused after a reboot): unfinished deliveries of an earlier run
 * that was killed. Any other file keeps the 36-hour rule. Returns the number removed. */
unsigned maildrop_recover_tmp(const char *maildrop_path);
/* Opens message m of md for reading (RETR/TOP). A Maildir message another reader renamed since
 * the listing (new/X -> cur/X:2,S, or new flags) is found by its UIDL in cur/ and new/: that
 * directory scan happens only when m->path is gone, so this may run on the event loop.
 * Returns the descriptor, or -1 with errno (ENOENT: the message was removed). */
int maildrop_message_open(const struct maildrop *md, const struct maildrop_message *m);
/* Unlinks every message marked deleted, then fsyncs the directories it touched.
 * Returns 0 or -1 (some could not be removed; the rest were). Blocking. */
int maildrop_commit_deletions(struct maildrop *md);
/* Releases the lock and frees the listing. Never deletes anything. */
void maildrop_close(struct maildrop *md);

#endif
