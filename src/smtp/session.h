/* smtp/session.h: the SMTP server protocol core (RFC 5321, with RFC 1870 SIZE, RFC 6152
 * 8BITMIME, RFC 2034 ENHANCEDSTATUSCODES, RFC 2920 PIPELINING, RFC 3207 STARTTLS, RFC 6531
 * SMTPUTF8). A pure state machine: a command line in, reply text out (into a strbuf) and an
 * action for the glue (smtp/server.c). It owns no socket and no file.
 *
 * Driving it (the glue):
 *   s = smtp_session_new(&params); smtp_session_greeting(s, out);
 *   for each line (CRLF stripped): action = smtp_session_feed_line(s, line, len, out);
 *     SMTP_ACTION_STARTTLS: flush out, discard buffered input, start TLS, then
 *                           smtp_session_tls_started(s, "TLSv1.3 TLS_AES_...").
 *     SMTP_ACTION_BEGIN_DATA: DATA was accepted but not answered yet: the storage comes first.
 *                           Set the queue id (smtp_session_set_queue_id), open one maildrop
 *                           file per server in smtp_session_tx(s) (smtp_tx_servers) and write
 *                           the trace headers (mail/trace.h), or begin the submission. Then
 *                           either smtp_session_data_ready(s, out), which writes the 354, or,
 *                           when the storage could not be opened, undo what was opened and
 *                           call smtp_session_storage_failed(s, errno, out), which answers the
 *                           DATA command itself with 451/452 and ends the transaction. After
 *                           the 354 feed raw bytes with smtp_session_feed_data() until
 *                           smtp_session_data_done(); then smtp_session_data_end() says
 *                           whether to commit.
 *     SMTP_ACTION_CHECK_AUTH: AUTH gave credentials. ok = smtp_session_verify_password(s)
 *                           (thread-safe: may run on a worker), then on the loop
 *                           smtp_session_auth_result(s, ok, out).
 *     SMTP_ACTION_CLOSE:    flush out and close.
 *   After a commit (off the event loop): smtp_session_data_committed(s, true, out), or
 *   smtp_session_data_failed(s, errno, out) when nothing was kept.
 */
#ifndef MAILPOPBOX_SMTP_SESSION_H
#define MAILPOPBOX_SMTP_SESSION_H

#include "bounds.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mail/dsn_params.h"
#include "smtp/address.h"
#include "smtp/data.h"
#include "strbuf.h"

enum smtp_state {
	SMTP_STATE_CONNECTED,  /* greeting sent, no EHLO/HELO yet (or again after STARTTLS) */
	SMTP_STATE_READY,      /* EHLO/HELO done, no transaction */
	SMTP_STATE_MAIL,       /* MAIL accepted, no recipient yet */
	SMTP_STATE_RCPT,       /* at least one recipient accepted */
	SMTP_STATE_DATA_OPENING, /* DATA accepted, the glue opens the storage; no 354 yet */
	SMTP_STATE_DATA,       /* 354 sent, receiving message data */
	SMTP_STATE_COMMITTING, /* message complete, waiting for the store to say it is durable */
	SMTP_STATE_STARTTLS,   /* 220 sent, waiting for the TLS handshake */
	SMTP_STATE_AUTH_RESPONSE, /* "334" sent: the next line is the SASL response (RFC 4954 4) */
	SMTP_STATE_AUTH_CHECK, /* credentials handed to the glue, waiting for the verdict */
	SMTP_STATE_CLOSED,     /* QUIT, error limit or timeout: nothing more is read */
};

enum smtp_action {
	SMTP_ACTION_NONE,
	SMTP_ACTION_STARTTLS,
	SMTP_ACTION_BEGIN_DATA,
	SMTP_ACTION_CHECK_AUTH,
	SMTP_ACTION_CLOSE,
};

enum smtp_data_verdict {
	SMTP_DATA_COMMIT,  /* make the message durable, then smtp_session_data_committed() */
	SMTP_DATA_DISCARD, /* refused (reply already in out): abort the maildrop files */
};

/* RFC 3461 4.1 NOTIFY flags; none set means the parameter was absent. */
enum {
	SMTP_NOTIFY_NEVER = DSN_NOTIFY_NEVER,
	SMTP_NOTIFY_SUCCESS = DSN_NOTIFY_SUCCESS,
	SMTP_NOTIFY_FAILURE = DSN_NOTIFY_FAILURE,
	SMTP_NOTIFY_DELAY = DSN_NOTIFY_DELAY,
};

enum smtp_dsn_ret {
	SMTP_DSN_RET_DEFAULT = DSN_RET_ABSENT,
	SMTP_DSN_RET_FULL = DSN_RET_FULL,
	SMTP_DSN_RET_HDRS = DSN_RET_HDRS,
};

struct smtp_rcpt {
	char address[SMTP_PATH_MAX + 1];
	const struct server_config *server; /* the local Server it is delivered to, or NULL when
					     * it is relayed (authenticated submission only) */
	unsigned notify;                    /* SMTP_NOTIFY_* from NOTIFY=, 0 when absent */
	char orcpt[SMTP_ORCPT_MAX + 1];     /* ORCPT= xtext-decoded ("rfc822;a@b"), "" if absent */
};

/* What belongs to one message (RFC 5321 3.3 mail transaction), reset by RSET/EHLO/end. */
struct smtp_tx {
	char queue_id[32];
	struct smtp_path sender;
	struct smtp_rcpt *rcpts;
	size_t rcpt_count;
	uint64_t declared_size; /* SIZE= parameter, 0 if absent */
	bool body_8bit;
	bool smtputf8;
	enum smtp_dsn_ret ret;               /* RET= (RFC 3461 4.3) */
	char envid[SMTP_ENVID_MAX + 1];      /* ENVID= xtext-decoded, "" if absent */
	/* The owner's own mail (authenticated): it is rewritten (send-as), signed and relayed. */
	const struct server_config *submitter;
	size_t relay_count;                  /* recipients with server == NULL */
};

struct smtp_session_params {
	const struct config *cfg;
	const char *client_ip;  /* textual address, for the Received header */
	bool tls_available;     /* a certificate is configured: offer STARTTLS */
	bool tls_active;        /* the connection is already TLS */
	bool submission;        /* a submission port: AUTH required before MAIL (RFC 6409 4.3) */
};

struct smtp_session;

struct smtp_session *smtp_session_new(const struct smtp_session_params *params);
void smtp_session_free(struct smtp_session *s);

void smtp_session_greeting(struct smtp_session *s, struct strbuf *out);
enum smtp_action smtp_session_feed_line(struct smtp_session *s, const char *line, size_t len,
	struct strbuf *out);
/* A command line longer than SMTP_COMMAND_LINE_MAX was received (and discarded). */
enum smtp_action smtp_session_line_too_long(struct smtp_session *s, struct strbuf *out);
/* No command (or no data) within the configured time: 421 and close. */
void smtp_session_timeout(struct smtp_session *s, struct strbuf *out);
/* The server is shutting down: 421 and close. */
void smtp_session_shutdown(struct smtp_session *s, struct strbuf *out);
void smtp_session_tls_started(struct smtp_session *s, const char *tls_description);

/* DATA phase. */
void smtp_session_set_queue_id(struct smtp_session *s, const char *queue_id);
/* After SMTP_ACTION_BEGIN_DATA, the storage is open: "354", and the message data follows. */
void smtp_session_data_ready(struct smtp_session *s, struct strbuf *out);
/* After SMTP_ACTION_BEGIN_DATA, the storage could not be opened (error: the errno): the DATA
 * command gets 452 4.3.1 for ENOSPC/EDQUOT, else 451 4.3.0, and no data is read. The
 * transaction ends as after a storage failure at the end of data (smtp_session_data_failed):
 * the client starts again with MAIL. */
void smtp_session_storage_failed(struct smtp_session *s, int error, struct strbuf *out);
/* Consumes raw bytes; unstuffed message bytes go to out_data (room for len + 1 octets).
 * Returns the bytes of in consumed (the rest belong to the next command). */
size_t smtp_session_feed_data(struct smtp_session *s, const char *in, size_t len,
	char *out_data, size_t *out_len);
bool smtp_session_data_done(const struct smtp_session *s);
enum smtp_data_verdict smtp_session_data_end(struct smtp_session *s, struct strbuf *out);
void smtp_session_data_committed(struct smtp_session *s, bool ok, struct strbuf *out);
/* The commit failed with errno error and nothing of the message was kept: a full disk or
 * quota (ENOSPC, EDQUOT) gets 452 4.3.1 (RFC 5321 4.2.3 "insufficient system storage",
 * RFC 3463 3.4 "Mail system full"), anything else 451 4.3.0. */
void smtp_session_data_failed(struct smtp_session *s, int error, struct strbuf *out);
/* The message was refused after the end of data (e.g. its header section is unusable):
 * reply is the full reply line without CRLF ("552 5.3.4 ..."). */
void smtp_session_data_rejected(struct smtp_session *s, const char *reply_line,
	struct strbuf *out);

/* A DNSBL lists the client (the MX port's check at connect, verify/dnsbl.h): from now on
 * RCPT to anything but postmaster (bare, or postmaster@ one of our domains) gets
 * "554 5.7.1 Service unavailable; client [IP] listed by ZONE: REASON" (": REASON" only when
 * reason is not empty). */
void smtp_session_set_dnsbl(struct smtp_session *s, const char *zone, const char *reason);

/* AUTH: the Server named by the login (NULL when it names none of ours) and the check;
 * verify only reads the session, so a worker thread may run it. */
const struct server_config *smtp_session_auth_server(const struct smtp_session *s);
bool smtp_session_verify_password(const struct smtp_session *s);
enum smtp_action smtp_session_auth_result(struct smtp_session *s, bool ok, struct strbuf *out);
/* Instead of checking: the client's address is locked out after too many failures. */
enum smtp_action smtp_session_auth_blocked(struct smtp_session *s, struct strbuf *out);
/* The authenticated Server (its mailbox logged in), or NULL. */
const struct server_config *smtp_session_authenticated(const struct smtp_session *s);

enum smtp_state smtp_session_state(const struct smtp_session *s);
const struct smtp_tx *smtp_session_tx(const struct smtp_session *s);
const char *smtp_session_helo(const struct smtp_session *s);
bool smtp_session_esmtp(const struct smtp_session *s);
bool smtp_session_tls_active(const struct smtp_session *s);
/* The TLS protocol and cipher given to smtp_session_tls_started, or NULL. */
const char *smtp_session_tls_description(const struct smtp_session *s);
const char *smtp_session_client_ip(const struct smtp_session *s);

/* The distinct Servers of the transaction's recipients, in first-seen order; returns the
 * count (at most max). */
size_t smtp_tx_servers(const struct smtp_tx *tx, const struct server_config **servers,
	size_t max);

#endif
