/* push/journal.h: the maildrop as the durable push queue. The messages themselves stay where
 * delivery put them (new/, cur/); what push adds is a journal, MaildropPath/.mailpopbox-push,
 * of one line per event: a push attempted (written and fdatasync'd before the message is sent),
 * confirmed by the destination, refused for good, or answered with a failure (a tagged NO: the
 * destination surely does not have it, so it is no longer in doubt). A message with an attempt and no outcome
 * after a crash is "in doubt": the engine looks it up at the destination before sending it
 * again. The journal is compacted (a durable tmp + rename) once it is mostly stale lines.
 *
 * Keys are a Maildir file's unique part (the name before ':'), which a reader's rename
 * new/X -> cur/X:2,S keeps; for a message of the Junk folder (MaildropPath/.Junk, Maildir++,
 * issue 14) ".Junk/" and the unique part: a Maildir name holds no '/', so the keys of the two
 * folders never meet, even when a tool moves a file from one folder to the other, and
 * journals written before the Junk folder existed read the same. All blocking; one push
 * thread owns a maildrop's journal. */
#ifndef MAILPOPBOX_PUSH_JOURNAL_H
#define MAILPOPBOX_PUSH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/maildrop_delivery.h"

#define PUSH_JOURNAL_NAME ".mailpopbox-push"
#define PUSH_STATUS_NAME ".mailpopbox-push-status"
/* The Maildir++ folder quarantined mail is delivered into (store/maildrop_delivery.h), and
 * the prefix of its messages' journal keys. */
#define PUSH_JUNK_FOLDER MAILDROP_JUNK_FOLDER
#define PUSH_JUNK_KEY_PREFIX MAILDROP_JUNK_FOLDER "/"

enum push_journal_state {
	PUSH_JOURNAL_NONE,      /* never attempted, or the attempt was answered with a failure */
	PUSH_JOURNAL_ATTEMPT,   /* sent (or about to be), no outcome recorded: in doubt */
	PUSH_JOURNAL_CONFIRMED, /* the destination has it; the maildrop change may be pending */
	PUSH_JOURNAL_REFUSED,   /* refused for good: never retried, still served by POP3 */
};

struct push_journal;

/* Reads MaildropPath/.mailpopbox-push (a missing file is an empty journal). With writable,
 * opens it for appending (creating it); a torn last line (a crash mid-write) is dropped by an
 * immediate compaction. Returns NULL with err on an I/O error. */
struct push_journal *push_journal_open(const char *maildrop_path, bool writable, char *err,
	size_t errsz);
void push_journal_close(struct push_journal *j);
enum push_journal_state push_journal_state(const struct push_journal *j, const char *key);
/* Appends a record (written at once, not yet durable); NONE says an attempt was answered with
 * a failure, so the message is not in doubt. Returns 0, or -1 with errno. */
int push_journal_record(struct push_journal *j, const char *key, enum push_journal_state state);
/* fdatasync: every record appended so far is durable. Returns 0, or -1 with errno. */
int push_journal_sync(struct push_journal *j);
/* Whether the journal's name no longer leads to the file it appends to: the maildrop (or the
 * journal) was moved away, removed or replaced. Records appended now would land in the old
 * file, where a restart never reads them: the caller reopens it. */
bool push_journal_moved(const struct push_journal *j);
/* Lines in the file, and keys known (for the compaction decision and tests). */
size_t push_journal_lines(const struct push_journal *j);
size_t push_journal_keys(const struct push_journal *j);
/* Compaction: after push_pending_list marked the keys whose files still wait (or are refused),
 * rewrites the journal with only those (durable tmp + rename), when the file has grown past
 * PUSH_JOURNAL_COMPACT_LINES and is mostly stale, or always with force. Returns 0, or -1 with
 * errno (the old journal stays valid). */
int push_journal_compact(struct push_journal *j, bool force);

/* One message of the maildrop that is not yet pushed. */
struct push_pending {
	char *path;                  /* full path when listed */
	char *key;                   /* the journal key: the Maildir unique part, after
	                              * PUSH_JUNK_KEY_PREFIX for a Junk message */
	bool junk;                   /* in MaildropPath/.Junk: goes to the Junk mailbox */
	uint64_t size;
	struct timespec mtime;
	enum push_journal_state state; /* NONE: to push; ATTEMPT: in doubt; CONFIRMED: to finalise;
	                                * REFUSED: only listed with include_refused */
};

struct push_listing {
	struct push_pending *items; /* arrival order: mtime, then names compared naturally */
	size_t count;
	size_t refused;             /* refused messages still in the maildrop */
	size_t legacy;              /* the original server's flat "*.msg" files, never pushed */
	size_t left_out;            /* pending beyond the max, listed on a later scan */
};

/* Lists new/ and cur/ of INBOX and of the Junk folder (when it exists; POP3 serves INBOX
 * only, the Junk folder is pushed all the same): every message that is not marked pushed
 * ('P' in its cur/ flags) and,
 * unless include_refused, not refused. At most max (the oldest). With j, each listed key's
 * state is filled in and marked live for compaction (j NULL: every state NONE).
 * Returns 0, or -1 with errno. */
int push_pending_list(const char *maildrop_path, struct push_journal *j, size_t max,
	bool include_refused, struct push_listing *out);
void push_listing_free(struct push_listing *l);

/* The maildrop's flock (the POP3 lock, MaildropPath/.mailpopbox.lock), taken without waiting.
 * Returns the descriptor to close, -2 when someone holds it (POP3), or -1 on an error. */
int push_maildrop_trylock(const char *maildrop_path);
/* After the destination confirmed: without keep_copy the file is removed, with it renamed to
 * cur/NAME:2,FLAGS with P added, in its own folder (INBOX or .Junk). A file moved since the
 * listing is found by its key in that folder. The caller holds the lock and calls
 * push_maildrop_sync afterwards. Returns 0 (also when the file is already gone), or -1 with
 * errno. */
int push_maildrop_finalise(const char *maildrop_path, const struct push_pending *p,
	bool keep_copy);
/* fsync of new/ and cur/ of INBOX (inbox) and of the Junk folder (junk, when it exists): the
 * finalisations there are durable. Returns 0, or -1 with errno. */
int push_maildrop_sync(const char *maildrop_path, bool inbox, bool junk);

/* The Maildir flags of a file name ("X:2,FS" -> "FS"; "" when it has none). */
const char *push_maildir_flags(const char *name);

#endif
