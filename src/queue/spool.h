/* queue/spool.h: the on-disk outbound queue under SpoolPath: one immutable message file and one
 * JSON envelope (sender, DSN parameters, per-recipient state: queue/envelope.h) per queued
 * message.
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
#include "queue/envelope.h"

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
