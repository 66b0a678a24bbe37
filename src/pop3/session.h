/* pop3/session.h: the POP3 server protocol core (RFC 1939, with RFC 2449 CAPA and response
 * codes, RFC 5034 SASL PLAIN, RFC 2595 STLS, RFC 3206 SYS/AUTH codes). A pure state machine: a
 * command line in, reply text out (appended to a strbuf) and an action for the glue
 * (pop3/server.c). It owns no socket and no file, and never calls the store.
 *
 * Driving it (the glue):
 *   s = pop3_session_new(&params); pop3_session_greeting(s, out); flush out.
 *   For each input line, CRLF (or bare LF) stripped:
 *     action = pop3_session_feed_line(s, line, len, out);
 *   A line longer than POP3_COMMAND_LINE_MAX octets (CRLF not counted): discard it through its
 *   LF and call action = pop3_session_line_too_long(s, out) once instead of feeding it.
 *   Replies go out in the order they are appended; flush out whenever convenient.
 *
 *   While an action other than NONE/CLOSE is pending the glue feeds no lines (pipelined input
 *   stays buffered) and finishes the action with the one call named below, which may append a
 *   reply and returns the next action. Feeding a line while an action is pending is a glue bug
 *   (fatal).
 *
 *   POP3_ACTION_NONE      go on feeding lines.
 *   POP3_ACTION_CLOSE     flush out, then close the connection. Nothing more is fed.
 *   POP3_ACTION_STARTTLS  "+OK Begin TLS negotiation" is in out: flush it in plain text, discard
 *                         any input buffered after the STLS line (RFC 2595 4: it must not be
 *                         taken as sent under TLS), start the TLS handshake, and when it
 *                         succeeds call pop3_session_tls_started(s). If it fails, close.
 *   POP3_ACTION_CHECK_PASSWORD  USER/PASS or AUTH PLAIN gave credentials. Compute
 *                         ok = pop3_session_verify_password(s) (may run in a worker thread: it
 *                         only reads the session and the config), then on the loop call
 *                         action = pop3_session_auth_result(s, ok, out). The session and the
 *                         config must stay alive until the worker is done.
 *   POP3_ACTION_OPEN_MAILDROP   credentials are good. In a worker:
 *                         status = maildrop_open(md, pop3_session_maildrop_path(s)); then on the
 *                         loop: action = pop3_session_maildrop_opened(s, status,
 *                         status == MAILDROP_OPEN_OK ? md : NULL, out).
 *   POP3_ACTION_RETRIEVE  RETR/TOP: nothing is in out yet. Open the file
 *                         (maildrop_message_open(md, pop3_session_retrieve_message(s))). If it
 *                         cannot be opened (removed meanwhile), call
 *                         action = pop3_session_retrieve_failed(s, errno, out): a -ERR, and the
 *                         session goes on. Otherwise call pop3_session_retrieve_opened(s, out),
 *                         which writes the "+OK" line, then stream the file through a dotstuff
 *                         filter (mail/dotstuff.h) initialised with
 *                         pop3_session_retrieve_lines(s), finish it (it writes the final
 *                         ".\r\n"), then call action = pop3_session_retrieve_done(s, true). If a
 *                         read fails once the "+OK" is out, call
 *                         pop3_session_retrieve_done(s, false): it returns CLOSE, and the glue
 *                         closes WITHOUT sending the terminator so the client cannot take a
 *                         partial message for a whole one.
 *   POP3_ACTION_LISTING   LIST or UIDL without argument: the "+OK" line is in out, the listing
 *                         follows in parts. Whenever the output has drained below a low-water
 *                         mark, call action = pop3_session_listing_more(s, out, budget): it
 *                         appends whole lines, about budget octets (at most budget - 1 +
 *                         POP3_LISTING_LINE_MAX, and at least one line), and returns LISTING
 *                         while more remains, NONE once it has written the final ".\r\n".
 *                         Memory for the reply stays bounded by the budget whatever the count.
 *   POP3_ACTION_COMMIT    QUIT in TRANSACTION: the session is in UPDATE (RFC 1939 6). In a
 *                         worker: indexes = pop3_session_deletions(s, &n);
 *                         ok = maildrop_commit_deletions(md, indexes, n) == 0; then on the loop
 *                         pop3_session_commit_done(s, ok, out) writes the final reply and
 *                         returns CLOSE.
 *
 * The maildrop: on MAILDROP_OPEN_OK the session borrows md (reads its listing, never changes
 * it) but never closes it, because closing is file I/O. The glue owns it: it calls
 * maildrop_close(md) when the connection ends, whatever the reason. DELE marks and RSET
 * clears are the session's own; the store learns them only as the list of
 * pop3_session_deletions(), handed to it in UPDATE. A connection that
 * ends without QUIT (drop, idle timeout) must not commit: RFC 1939 6 removes messages only in
 * UPDATE, entered by QUIT.
 *
 * Idle timeout (RFC 1939 3, POP3_DEFAULT_IDLE_TIMEOUT_SECONDS) is the glue's; it closes without
 * a reply and without committing.
 *
 * The session keeps params->cfg and pointers to its Servers for its whole life: after a config
 * reload the glue must keep the old config alive until the sessions that use it are freed. */
#ifndef MAILPOPBOX_POP3_SESSION_H
#define MAILPOPBOX_POP3_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "config.h"
#include "store/maildrop.h"
#include "strbuf.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION, /* RFC 1939 4: greeting sent, no maildrop yet */
	POP3_STATE_TRANSACTION,   /* RFC 1939 5: maildrop open and locked */
	POP3_STATE_UPDATE,        /* RFC 1939 6: QUIT received, deletions being committed */
	POP3_STATE_CLOSED,        /* nothing more is read */
};

enum pop3_action {
	POP3_ACTION_NONE,
	POP3_ACTION_STARTTLS,
	POP3_ACTION_CHECK_PASSWORD,
	POP3_ACTION_OPEN_MAILDROP,
	POP3_ACTION_RETRIEVE,
	POP3_ACTION_LISTING,
	POP3_ACTION_COMMIT,
	POP3_ACTION_CLOSE,
};

struct pop3_session_params {
	const struct config *cfg;   /* logins are "mailbox@DOMAIN" of one of its Servers */
	bool tls_active;            /* the connection is TLS now (implicit TLS port, 995) */
	bool stls_offered;          /* plain port with a certificate: offer STLS (RFC 2595) */
	const char *implementation; /* CAPA IMPLEMENTATION text; NULL = "mailpopbox" */
};

/* Login (USER/PASS/AUTH) is refused on a connection that offers STLS until TLS is active, so
 * the password never crosses the network in clear. A plain port without STLS (no certificate,
 * tests) allows it. */

struct pop3_session;

struct pop3_session *pop3_session_new(const struct pop3_session_params *params);
/* Wipes the credentials and frees. Does not touch the borrowed maildrop. NULL is allowed. */
void pop3_session_free(struct pop3_session *s);

/* RFC 1939 4: "+OK mailpopbox ready". No "<...>" timestamp: that announces APOP
 * (RFC 1939 7), which we do not offer, and clients would try it. */
void pop3_session_greeting(struct pop3_session *s, struct strbuf *out);

/* One command line (or an AUTH continuation line) of len octets without its CRLF. It may
 * contain any octet; a NUL or more than POP3_COMMAND_LINE_MAX octets get -ERR. */
enum pop3_action pop3_session_feed_line(struct pop3_session *s, const char *line, size_t len,
	struct strbuf *out);
/* The glue dropped an over-long line (see above): -ERR, counted as a bad command. */
enum pop3_action pop3_session_line_too_long(struct pop3_session *s, struct strbuf *out);

/* ---- completing actions ---- */

/* The longest line of a LIST or UIDL listing: a message number and an octet count of up to
 * 20 digits each, or a number and a unique-id (RFC 1939 7), then CRLF. */
#define POP3_LISTING_LINE_MAX (20 + 1 + (POP3_UIDL_MAX > 20 ? POP3_UIDL_MAX : 20) + 2)

/* After POP3_ACTION_STARTTLS, once the handshake succeeded. RFC 2595 4: what the client said
 * before TLS (a USER name) is forgotten; CAPA now offers USER/SASL and no STLS. No reply. */
void pop3_session_tls_started(struct pop3_session *s);

/* After POP3_ACTION_CHECK_PASSWORD. The Server the login names, or NULL when the name is no
 * "mailbox@DOMAIN" of ours (or a SASL authzid asks for another identity): the check then goes
 * the same way and fails, so an unknown user looks and takes the same as a wrong password. */
const struct server_config *pop3_session_auth_server(const struct pop3_session *s);
/* The password octets (not NUL-terminated, may hold any octet but NUL). Never log them. */
const char *pop3_session_auth_password(const struct pop3_session *s, size_t *len);
/* auth_server != NULL && auth_check_password(). Thread-safe: reads only. */
bool pop3_session_verify_password(const struct pop3_session *s);
/* Wipes the password. ok: returns POP3_ACTION_OPEN_MAILDROP, no reply yet. Not ok:
 * "-ERR [AUTH] invalid credentials" (RFC 3206 5), then NONE, or CLOSE after
 * POP3_MAX_AUTH_FAILURES failures. */
enum pop3_action pop3_session_auth_result(struct pop3_session *s, bool ok, struct strbuf *out);

/* Instead of checking the password: the client's address is locked out (brute-force
 * throttling). Wipes the password, "-ERR [SYS/TEMP] ...", returns CLOSE. */
enum pop3_action pop3_session_auth_blocked(struct pop3_session *s, struct strbuf *out);

/* After POP3_ACTION_OPEN_MAILDROP: the authenticated Server's MaildropPath. */
const char *pop3_session_maildrop_path(const struct pop3_session *s);
/* OK: md is borrowed (see above), "+OK maildrop has N messages (M octets)", TRANSACTION.
 * LOCKED: "-ERR [IN-USE] maildrop locked" (RFC 2449 8.1.2); ERROR: "-ERR [SYS/TEMP] ..."
 * (RFC 3206 4); both stay in AUTHORIZATION (RFC 1939 7, PASS). Returns NONE or CLOSE. */
enum pop3_action pop3_session_maildrop_opened(struct pop3_session *s,
	enum maildrop_open_status status, struct maildrop *md, struct strbuf *out);

/* After POP3_ACTION_RETRIEVE: the message to send, its 0-based index in the listing
 * (POP3 message number - 1), and the TOP body line count, or -1 for RETR. */
const struct maildrop_message *pop3_session_retrieve_message(const struct pop3_session *s);
size_t pop3_session_retrieve_index(const struct pop3_session *s);
long pop3_session_retrieve_lines(const struct pop3_session *s);
/* The message file is open: writes "+OK <size> octets" (RETR) or "+OK top of message
 * follows" (TOP). The streaming that follows ends with retrieve_done. */
void pop3_session_retrieve_opened(struct pop3_session *s, struct strbuf *out);
/* Instead of retrieve_opened, when the file could not be opened (error: its errno; ENOENT when
 * another reader removed it): "-ERR [SYS/TEMP] message unavailable" (RFC 1939 5, RFC 3206 4).
 * Returns NONE, or CLOSE after too many errors in a row. */
enum pop3_action pop3_session_retrieve_failed(struct pop3_session *s, int error,
	struct strbuf *out);
/* After retrieve_opened. ok: the whole response including ".\r\n" was queued; returns NONE.
 * Not ok: returns CLOSE. */
enum pop3_action pop3_session_retrieve_done(struct pop3_session *s, bool ok);

/* After POP3_ACTION_LISTING: more lines of the listing, see above. */
enum pop3_action pop3_session_listing_more(struct pop3_session *s, struct strbuf *out,
	size_t budget);

/* After POP3_ACTION_COMMIT (from a worker too: the session does not change meanwhile): the
 * 0-based listing indexes of the messages marked deleted, ascending; *count of them. */
const size_t *pop3_session_deletions(const struct pop3_session *s, size_t *count);
/* After POP3_ACTION_COMMIT: "+OK ... signing off" or "-ERR [SYS/TEMP] ..." (RFC 1939 6: some
 * deleted messages not removed). Always returns CLOSE. */
enum pop3_action pop3_session_commit_done(struct pop3_session *s, bool ok, struct strbuf *out);

/* ---- for logs and timeouts ---- */

enum pop3_state pop3_session_state(const struct pop3_session *s);
/* The login name of the last USER/AUTH (client text: pass it through log_quote), "" if none. */
const char *pop3_session_user(const struct pop3_session *s);

#endif
