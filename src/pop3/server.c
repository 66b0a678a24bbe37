/* pop3/server.c: the POP3 glue on the connection layer (net/conn.h): command lines go to the
 * core (pop3/session.c); opening the maildrop and UPDATE's deletions run on the worker pool;
 * RETR/TOP stream the message file through the dot-stuffing filter as the socket drains, so
 * memory does not grow with message size. */
#include "pop3/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "generation.h"
#include "log.h"
#include "net/conn.h"
#include "mail/dotstuff.h"
#include "pop3/session.h"
#include "store/maildrop.h"
#include "strbuf.h"

/* Octets of a message file read at a time for RETR/TOP, and of a listing made at a time. */
#define RETR_READ_CHUNK (16 * 1024)
#define LISTING_CHUNK (16 * 1024)

struct pop3_conn {
	struct net_conn *conn;
	struct pop3_session *session;
	struct strbuf out;
	struct maildrop md;
	bool md_open;
	enum maildrop_open_status open_status;
	bool commit_ok;
	int retr_fd;           /* message file being sent, -1 when none */
	uint64_t retr_left;    /* octets of it not read yet, as listed (0: unknown) */
	struct dotstuff stuff;
	bool after_stls;       /* the handshake follows STLS (not implicit TLS) */
	time_t connected_at;
	unsigned retrieved, deleted;
};

static void pop3_process(struct pop3_conn *p);
static void handle_action(struct pop3_conn *p, enum pop3_action action);

static void pop3_free(struct net_conn *conn, void *glue)
{
	struct pop3_conn *p = glue;

	if (p->retr_fd >= 0)
		close(p->retr_fd);
	/* Closing without UPDATE deletes nothing (RFC 1939 6); this only drops the lock. */
	if (p->md_open)
		maildrop_close(&p->md);
	log_info("pop3", "event=disconnect client=%s retrieved=%u deleted=%u seconds=%ld",
		net_conn_ip(conn), p->retrieved, p->deleted, (long)(time(NULL) - p->connected_at));
	pop3_session_free(p->session);
	strbuf_free(&p->out);
	free(p);
}

static void flush_out(struct pop3_conn *p)
{
	net_conn_send(p->conn, p->out.data, p->out.len);
	strbuf_reset(&p->out);
}

/* ---- the login gate is the layer's; maildrop opening and UPDATE are jobs ---- */

static bool login_verify(void *glue)
{
	return pop3_session_verify_password(((struct pop3_conn *)glue)->session);
}

static void login_describe(void *glue, bool ok, char *buf, size_t size)
{
	const char *name = pop3_session_user(((struct pop3_conn *)glue)->session);
	char user[128];

	(void)ok;
	snprintf(buf, size, "user=%s", log_quote(user, sizeof(user), name, strlen(name)));
}

static void open_work(void *glue)
{
	struct pop3_conn *p = glue;

	p->open_status = maildrop_open(&p->md, pop3_session_maildrop_path(p->session));
}

static void open_done(struct net_conn *conn, void *glue)
{
	struct pop3_conn *p = glue;

	p->md_open = p->open_status == MAILDROP_OPEN_OK;
	if (p->md_open)
		log_info("pop3", "event=maildrop_open client=%s messages=%zu", net_conn_ip(conn),
			p->md.count);
	else
		log_warn("pop3", "event=maildrop_open_failed client=%s reason=%s",
			net_conn_ip(conn), p->open_status == MAILDROP_OPEN_LOCKED ? "locked" : "error");
	handle_action(p, pop3_session_maildrop_opened(p->session, p->open_status,
		p->md_open ? &p->md : NULL, &p->out));
}

static void commit_work(void *glue)
{
	struct pop3_conn *p = glue;

	size_t count;
	const size_t *indexes = pop3_session_deletions(p->session, &count);

	p->deleted = (unsigned)count;
	p->commit_ok = maildrop_commit_deletions(&p->md, indexes, count) == 0;
}

/* The deletions are durable whether or not the client is still there to hear it. */
static void commit_done(struct net_conn *conn, void *glue)
{
	struct pop3_conn *p = glue;

	if (!p->commit_ok)
		log_error("pop3", "event=delete_failed client=%s", net_conn_ip(conn));
	handle_action(p, pop3_session_commit_done(p->session, p->commit_ok, &p->out));
}

/* ---- RETR / TOP ---- */

/* Sends the next part of the message (net_conn_produce); false once it has all gone. */
static bool retrieve_more(struct net_conn *conn, void *glue)
{
	char chunk[RETR_READ_CHUNK]; /* not _Thread_local: see feed_data in smtp/server.c */
	struct pop3_conn *p = glue;
	ssize_t n;

	while ((n = read(p->retr_fd, chunk, sizeof(chunk))) < 0 && errno == EINTR)
		continue;
	if (n < 0)
		log_error("pop3", "event=retrieve_failed client=%s error=\"%s\"",
			net_conn_ip(conn), strerror(errno));
	bool more = n > 0 && dotstuff_feed(&p->stuff, chunk, (size_t)n, &p->out);
	/* Maildir files never change once delivered: when the listed size has been read, the
	 * file is at its end, without one more read(2) to hear it. */
	if (more && p->retr_left > 0) {
		p->retr_left = (uint64_t)n < p->retr_left ? p->retr_left - (uint64_t)n : 0;
		more = p->retr_left > 0;
	}
	if (!more && n >= 0)
		dotstuff_finish(&p->stuff, &p->out);
	flush_out(p);
	if (more)
		return true;
	close(p->retr_fd);
	p->retr_fd = -1;
	if (n >= 0)
		p->retrieved++;
	handle_action(p, pop3_session_retrieve_done(p->session, n >= 0));
	return false;
}

/* RETR/TOP: "+OK" only once the file is open (RFC 1939 5: else -ERR, and the session's DELEs
 * stand). The "+OK" then goes out with the first part of the message, one TLS record and one
 * write(2) for a small message instead of two. */
static void start_retrieve(struct pop3_conn *p)
{
	const struct maildrop_message *m = pop3_session_retrieve_message(p->session);

	p->retr_fd = maildrop_message_open(&p->md, m);
	if (p->retr_fd < 0) {
		int error = errno;
		log_warn("pop3", "event=retrieve_unavailable client=%s uidl=%s error=\"%s\"",
			net_conn_ip(p->conn), m->uidl, strerror(error));
		handle_action(p, pop3_session_retrieve_failed(p->session, error, &p->out));
		return;
	}
	pop3_session_retrieve_opened(p->session, &p->out);
	dotstuff_init(&p->stuff, pop3_session_retrieve_lines(p->session));
	p->retr_left = m->file_size;
	net_conn_produce(p->conn, retrieve_more);
}

/* LIST/UIDL without argument (net_conn_produce): a maildrop at the message limit is listed as
 * the client reads, not built whole in memory. */
static bool listing_more(struct net_conn *conn, void *glue)
{
	struct pop3_conn *p = glue;
	enum pop3_action action = pop3_session_listing_more(p->session, &p->out, LISTING_CHUNK);

	(void)conn;
	flush_out(p);
	if (action == POP3_ACTION_LISTING)
		return true;
	handle_action(p, action);
	return false;
}

/* ---- command lines ---- */

static void handle_action(struct pop3_conn *p, enum pop3_action action)
{
	if (action != POP3_ACTION_LISTING) /* its "+OK" goes out with the first lines */
		flush_out(p);
	switch (action) {
	case POP3_ACTION_NONE:
		break;
	case POP3_ACTION_CLOSE:
		net_conn_close(p->conn);
		break;
	case POP3_ACTION_STARTTLS:
		/* RFC 2595 4: input pipelined after STLS arrived in clear and is thrown away. */
		p->after_stls = true;
		net_conn_start_tls(p->conn, TLS_POLICY_STRICT);
		break;
	case POP3_ACTION_CHECK_PASSWORD:
		net_conn_login(p->conn);
		break;
	case POP3_ACTION_OPEN_MAILDROP:
		net_conn_job(p->conn, open_work, open_done);
		break;
	case POP3_ACTION_RETRIEVE:
		start_retrieve(p);
		break;
	case POP3_ACTION_LISTING:
		net_conn_produce(p->conn, listing_more);
		break;
	case POP3_ACTION_COMMIT:
		net_conn_job(p->conn, commit_work, commit_done);
		break;
	}
}

static void pop3_process(struct pop3_conn *p)
{
	char line[POP3_COMMAND_LINE_MAX + 1];
	size_t len;
	enum net_line_result got;

	while ((got = net_conn_read_line(p->conn, line, &len)) != NET_LINE_NONE)
		handle_action(p, got == NET_LINE_OK ?
			pop3_session_feed_line(p->session, line, len, &p->out) :
			pop3_session_line_too_long(p->session, &p->out));
}

/* The handshake ended, after STLS or on the implicit TLS port. */
static void tls_ready(struct pop3_conn *p)
{
	char description[128];

	net_conn_tls_describe(p->conn, description, sizeof(description));
	log_info("pop3", "event=tls client=%s tls=\"%s\"", net_conn_ip(p->conn), description);
	if (p->after_stls)
		pop3_session_tls_started(p->session);
	else
		pop3_session_greeting(p->session, &p->out);
	flush_out(p);
}

static void pop3_event(struct net_conn *conn, void *glue, enum net_event event)
{
	struct pop3_conn *p = glue;

	switch (event) {
	case NET_EVENT_INPUT:
		pop3_process(p);
		break;
	case NET_EVENT_TLS_READY:
		tls_ready(p);
		break;
	case NET_EVENT_LOGIN_OK:
	case NET_EVENT_LOGIN_FAILED:
		handle_action(p, pop3_session_auth_result(p->session, event == NET_EVENT_LOGIN_OK,
			&p->out));
		break;
	case NET_EVENT_LOGIN_BLOCKED:
		handle_action(p, pop3_session_auth_blocked(p->session, &p->out));
		break;
	case NET_EVENT_STALLED: /* the connection ends without UPDATE (RFC 1939 6) */
		log_info("pop3", "event=timeout client=%s reason=not_reading", net_conn_ip(conn));
		break;
	case NET_EVENT_DEADLINE: /* RFC 1939 3: the autologout timer; no UPDATE */
	case NET_EVENT_READ_IDLE:
		log_info("pop3", "event=timeout client=%s", net_conn_ip(conn));
		net_conn_close(conn);
		break;
	case NET_EVENT_SHUTDOWN: /* no QUIT was said: nothing is deleted; a RETR stops */
		net_conn_close(conn);
		break;
	}
}

/* A full house sheds this connection, one not logged in: closed at once, without UPDATE. */
static const char *pop3_shed(struct net_conn *conn, void *glue, struct strbuf *last)
{
	(void)conn;
	(void)glue;
	strbuf_append_str(last, "-ERR [SYS/TEMP] server busy, closing idle connection\r\n");
	return "idle";
}

static const struct net_handler pop3_handler = {"pop3", pop3_event, pop3_shed, pop3_free,
	login_verify, login_describe};

static void pop3_accept(struct net_conn *conn, const struct net_protocol *protocol)
{
	struct pop3_conn *p = xcalloc(1, sizeof(*p));
	const struct generation *gen = net_conn_generation(conn);
	bool implicit_tls = net_conn_implicit_tls(conn);
	bool stls_offered = protocol == &pop3_server_stls && tls_available(gen->tls);

	p->conn = conn;
	p->retr_fd = -1;
	p->connected_at = time(NULL);
	strbuf_init(&p->out);
	net_conn_attach(conn, &pop3_handler, p);
	/* RFC 1939 3: the autologout timer is at least 10 minutes; it also bounds a write. */
	net_conn_set_lines(conn, POP3_COMMAND_LINE_MAX, gen->cfg.pop3_idle_timeout);
	net_conn_set_timeouts(conn, 0, gen->cfg.pop3_idle_timeout);
	struct pop3_session_params params = {
		.cfg = &gen->cfg,
		.tls_active = implicit_tls,
		.stls_offered = stls_offered,
		.implementation = "mailpopbox " MAILPOPBOX_VERSION,
	};
	p->session = pop3_session_new(&params);
	log_info("pop3", "event=connect client=%s tls=%s", net_conn_ip(conn),
		implicit_tls ? "implicit" : stls_offered ? "stls" : "none");
	if (!implicit_tls) { /* else greeted once TLS is up */
		pop3_session_greeting(p->session, &p->out);
		flush_out(p);
	}
}

static int pop3_port(const struct config *cfg, const struct net_protocol *protocol,
	bool *optional)
{
	(void)optional;
	return protocol == &pop3_server_stls ? cfg->pop3_stls_port : cfg->pop3_port;
}

static const char pop3_busy[] = "-ERR [SYS/TEMP] too many connections\r\n";

const struct net_protocol pop3_server_pop3 = {"pop3", "POP3Port", 995, pop3_port,
	ADMISSION_OWNER, NET_TLS_IMPLICIT_IF_CERT, TLS_POLICY_STRICT, pop3_busy, pop3_accept};
const struct net_protocol pop3_server_stls = {"pop3-stls", "POP3STLSPort", 110, pop3_port,
	ADMISSION_OWNER, NET_TLS_PLAIN, TLS_POLICY_STRICT, pop3_busy, pop3_accept};
