/* store/maildrop.h: the Maildir store behind each Server's MaildropPath. Delivery (writing new
 * messages) is store/maildrop_delivery.h, included here.
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
#include "store/maildrop_delivery.h"

/* ---- POP3 access ---- */

struct maildrop_message {
	char *path;                   /* full path of the file */
	uint64_t size;                /* RFC 1939 5: octets RETR sends before byte-stuffing; the
	                               * file size, except for legacy LF files (see maildrop_open) */
	uint64_t file_size;           /* octets in the file when listed */
	char uidl[POP3_UIDL_MAX + 1]; /* RFC 1939 unique-id, stable across sessions */
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
/* Opens message m of md for reading (RETR/TOP). A Maildir message another reader renamed since
 * the listing (new/X -> cur/X:2,S, or new flags) is found by its UIDL in cur/ and new/: that
 * directory scan happens only when m->path is gone, so this may run on the event loop.
 * Returns the descriptor, or -1 with errno (ENOENT: the message was removed). */
int maildrop_message_open(const struct maildrop *md, const struct maildrop_message *m);
/* Unlinks the count messages of md->messages at indexes (POP3 UPDATE hands over its DELE
 * marks this way), then fsyncs the directories it touched.
 * Returns 0 or -1 (some could not be removed; the rest were). Blocking. */
int maildrop_commit_deletions(struct maildrop *md, const size_t *indexes, size_t count);
/* Releases the lock and frees the listing. Never deletes anything. */
void maildrop_close(struct maildrop *md);

#endif
