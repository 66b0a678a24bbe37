/* pop3/server.c: bytes <-> POP3 lines for one client. Password checks, maildrop opening and
 * UPDATE deletions run on the worker pool; RETR/TOP stream the message file through the
 * dot-stuffing filter as the socket drains, so memory does not grow with message size. */
#include "pop3/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "connection.h"
#include "daemon.h"
#include "generation.h"
#include "bounds.h"
#include "log.h"
#include "mail/dotstuff.h"
#include "pop3/session.h"
#include "store/maildrop.h"
#include "strbuf.h"
#include "tls.h"
#include "worker.h"

/* RETR output is produced while less than this is queued, and resumed below the low mark. */
#define RETR_OUTPUT_HIGH (64 * 1024)
#define RETR_OUTPUT_LOW (16 * 1024)
#define RETR_READ_CHUNK (16 * 1024)
/* Octets of a LIST/UIDL listing asked of the core at a time (same marks as RETR). */
#define LISTING_CHUNK (16 * 1024)

struct pop3_conn {
	struct daemon_conn base; /* first: the registry hands us back this pointer */
	struct daemon *srv;
	struct bufferevent *bev;  /* NULL while a TLS handshake is under way */
	struct tls_accept *handshake;
	struct pop3_session *session;
	struct strbuf out;
	struct maildrop md;
	bool md_open;
	enum maildrop_open_status open_status;
	bool auth_ok, commit_ok;
	int retr_fd;           /* message file being sent, -1 when none */
	bool listing;          /* a LIST/UIDL listing is being written as the output drains */
	uint64_t retr_left;    /* octets of it not read yet, as listed (0: unknown) */
	struct dotstuff stuff;
	bool discarding_line;  /* inside an over-long command line */
	bool closing;
	bool job_pending;      /* a worker job holds this connection */
	bool gone;             /* the client left while a job was pending */
	struct event *auth_delay; /* holds a failed login's reply back (throttling) */
	struct connection_deadline deadline; /* for the next command line or TLS handshake */
	bool after_stls;       /* the handshake follows STLS (not implicit TLS) */
	time_t connected_at;
	unsigned retrieved, deleted;
};

static void pop3_conn_process(struct pop3_conn *c);
static void handle_action(struct pop3_conn *c, enum pop3_action action);

/* RFC 1939 3: the autologout timer is at least 10 minutes. It runs as a deadline for each
 * command line (and the TLS handshake) from when we start waiting for it; partial input does
 * not move it, so a client trickling bytes cannot hold a slot for ever (slowloris). The write
 * timeout catches a client that stops reading a long RETR. */
static void set_timeouts(struct pop3_conn *c)
{
	struct timeval t = {c->base.gen->cfg.pop3_idle_timeout, 0};

	bufferevent_set_timeouts(c->bev, NULL, &t);
}

static void arm_command_deadline(struct pop3_conn *c)
{
	connection_deadline_arm(&c->deadline, c->base.gen->cfg.pop3_idle_timeout);
}

static void pop3_conn_free(struct pop3_conn *c)
{
	connection_deadline_free(&c->deadline);
	if (c->handshake)
		tls_accept_cancel(c->handshake);
	if (c->auth_delay)
		event_free(c->auth_delay);
	if (c->retr_fd >= 0)
		close(c->retr_fd);
	/* Closing without UPDATE deletes nothing (RFC 1939 6); this only drops the lock. */
	if (c->md_open)
		maildrop_close(&c->md);
	log_info("pop3", "event=disconnect client=%s retrieved=%u deleted=%u seconds=%ld",
		c->base.ip, c->retrieved, c->deleted, (long)(time(NULL) - c->connected_at));
	if (c->bev)
		bufferevent_free(c->bev);
	pop3_session_free(c->session);
	strbuf_free(&c->out);
	daemon_conn_release(c->srv, &c->base);
	free(c);
}

static void pop3_conn_free_cb(void *arg)
{
	pop3_conn_free(arg);
}

static void flush_out(struct pop3_conn *c)
{
	if (c->out.len && c->bev)
		evbuffer_add(bufferevent_get_output(c->bev), c->out.data, c->out.len);
	strbuf_reset(&c->out);
}

static void close_after_flush(struct pop3_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (!c->bev) { /* in a TLS handshake: nothing to flush */
		pop3_conn_free(c);
		return;
	}
	connection_close_when_flushed(c->srv->base, c->bev, pop3_conn_free_cb, c);
}

/* ---- worker jobs: password, maildrop open, deletions ---- */

static void job_start(struct pop3_conn *c, worker_work_fn work, worker_done_fn done)
{
	c->job_pending = true;
	bufferevent_disable(c->bev, EV_READ);
	worker_pool_submit(c->srv->workers, work, done, c);
}

/* Returns true when the connection was freed because the client left meanwhile. */
static bool job_finish(struct pop3_conn *c)
{
	c->job_pending = false;
	if (c->gone) {
		pop3_conn_free(c);
		return true;
	}
	/* The reply to the finished job is progress: not shed before the client could read it. */
	daemon_conn_touch(c->srv, &c->base);
	bufferevent_enable(c->bev, EV_READ);
	return false;
}

static void password_work(void *arg)
{
	struct pop3_conn *c = arg;

	c->auth_ok = pop3_session_verify_password(c->session);
}

static void password_reply(struct pop3_conn *c)
{
	if (job_finish(c))
		return;
	handle_action(c, pop3_session_auth_result(c->session, c->auth_ok, &c->out));
	pop3_conn_process(c);
}

static void password_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_conn *c = arg;

	(void)fd;
	(void)what;
	event_free(c->auth_delay);
	c->auth_delay = NULL;
	password_reply(c);
}

static void password_done(void *arg)
{
	struct pop3_conn *c = arg;
	char user[128], detail[160];
	const char *name = pop3_session_user(c->session);

	log_quote(user, sizeof(user), name, strlen(name));
	if (c->auth_ok) {
		daemon_login_succeeded(c->srv, &c->base);
		log_info("pop3", "event=login client=%s user=%s", c->base.ip, user);
		password_reply(c);
		return;
	}
	snprintf(detail, sizeof(detail), "user=%s", user);
	unsigned delay = daemon_login_failed(c->srv, &c->base, "pop3", detail);
	if (delay == 0 || c->gone) {
		password_reply(c);
		return;
	}
	/* Slow the guesser down; the job stays pending, so nothing else is read meanwhile. */
	struct timeval wait = {(time_t)delay, 0};
	c->auth_delay = evtimer_new(c->srv->base, password_delay_done, c);
	evtimer_add(c->auth_delay, &wait);
}

static void open_work(void *arg)
{
	struct pop3_conn *c = arg;

	c->open_status = maildrop_open(&c->md, pop3_session_maildrop_path(c->session));
}

static void open_done(void *arg)
{
	struct pop3_conn *c = arg;

	c->md_open = c->open_status == MAILDROP_OPEN_OK;
	if (job_finish(c))
		return;
	if (c->md_open)
		log_info("pop3", "event=maildrop_open client=%s messages=%zu", c->base.ip,
			c->md.count);
	else
		log_warn("pop3", "event=maildrop_open_failed client=%s reason=%s", c->base.ip,
			c->open_status == MAILDROP_OPEN_LOCKED ? "locked" : "error");
	handle_action(c, pop3_session_maildrop_opened(c->session, c->open_status,
		c->md_open ? &c->md : NULL, &c->out));
	pop3_conn_process(c);
}

static void commit_work(void *arg)
{
	struct pop3_conn *c = arg;

	size_t count;
	const size_t *indexes = pop3_session_deletions(c->session, &count);

	c->deleted = (unsigned)count;
	c->commit_ok = maildrop_commit_deletions(&c->md, indexes, count) == 0;
}

static void commit_done(void *arg)
{
	struct pop3_conn *c = arg;

	/* The deletions are durable whether or not the client is still there to hear it. */
	if (job_finish(c))
		return;
	if (!c->commit_ok)
		log_error("pop3", "event=delete_failed client=%s", c->base.ip);
	handle_action(c, pop3_session_commit_done(c->session, c->commit_ok, &c->out));
}

/* ---- RETR / TOP ---- */

/* Sends more of the message while the output queue is short. */
static void retrieve_pump(struct pop3_conn *c)
{
	static char chunk[RETR_READ_CHUNK];
	struct evbuffer *output = bufferevent_get_output(c->bev);

	while (c->retr_fd >= 0 && evbuffer_get_length(output) < RETR_OUTPUT_HIGH) {
		ssize_t n = read(c->retr_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("pop3", "event=retrieve_failed client=%s error=\"%s\"", c->base.ip,
				strerror(errno));
			close(c->retr_fd);
			c->retr_fd = -1;
			flush_out(c);
			handle_action(c, pop3_session_retrieve_done(c->session, false));
			return;
		}
		bool more = n > 0 && dotstuff_feed(&c->stuff, chunk, (size_t)n, &c->out);
		/* Maildir files never change once delivered: when the listed size has been read,
		 * the file is at its end, without one more read(2) to hear it. */
		if (more && c->retr_left > 0) {
			c->retr_left = (uint64_t)n < c->retr_left ? c->retr_left - (uint64_t)n : 0;
			more = c->retr_left > 0;
		}
		if (!more) {
			dotstuff_finish(&c->stuff, &c->out);
			flush_out(c);
			close(c->retr_fd);
			c->retr_fd = -1;
			c->retrieved++;
			handle_action(c, pop3_session_retrieve_done(c->session, true));
			pop3_conn_process(c);
			return;
		}
		flush_out(c);
	}
}

static void start_retrieve(struct pop3_conn *c)
{
	const struct maildrop_message *m = pop3_session_retrieve_message(c->session);

	/* The file is opened before the core writes its "+OK": once that is sent, a failure can
	 * only be told by closing without the terminator (RFC 1939 3), which loses the session's
	 * DELEs. Before, the answer is a -ERR (RFC 1939 5, RETR/TOP). */
	c->retr_fd = maildrop_message_open(&c->md, m);
	if (c->retr_fd < 0) {
		int error = errno;
		log_warn("pop3", "event=retrieve_unavailable client=%s uidl=%s error=\"%s\"",
			c->base.ip, m->uidl, strerror(error));
		handle_action(c, pop3_session_retrieve_failed(c->session, error, &c->out));
		return;
	}
	pop3_session_retrieve_opened(c->session, &c->out);
	dotstuff_init(&c->stuff, pop3_session_retrieve_lines(c->session));
	c->retr_left = m->file_size;
	/* No flush here: the "+OK" goes out with the first part of the message, one TLS
	 * record and one write(2) for a small message instead of two. */
	retrieve_pump(c);
}

/* ---- LIST / UIDL ---- */

/* Writes more of the listing while the output queue is short. Returns true when it ended
 * (the next action handled), false while it waits for the output to drain. */
static bool listing_pump(struct pop3_conn *c)
{
	struct evbuffer *output = bufferevent_get_output(c->bev);

	while (evbuffer_get_length(output) < RETR_OUTPUT_HIGH) {
		enum pop3_action action = pop3_session_listing_more(c->session, &c->out,
			LISTING_CHUNK);
		flush_out(c);
		if (action != POP3_ACTION_LISTING) {
			c->listing = false;
			handle_action(c, action);
			return true;
		}
	}
	return false;
}

/* ---- STLS ---- */

static void pop3_read_cb(struct bufferevent *bev, void *arg);
static void pop3_write_cb(struct bufferevent *bev, void *arg);
static void pop3_event_cb(struct bufferevent *bev, short what, void *arg);

static void setup_bufferevent(struct pop3_conn *c)
{
	bufferevent_setcb(c->bev, pop3_read_cb, pop3_write_cb, pop3_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, SESSION_INPUT_BUFFER_MAX);
	bufferevent_setwatermark(c->bev, EV_WRITE, RETR_OUTPUT_LOW, 0);
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* The TLS handshake ended, after STLS or on the implicit TLS port. */
static void tls_ready(void *arg, struct bufferevent *bev, const char *failure)
{
	struct pop3_conn *c = arg;

	c->handshake = NULL;
	if (!bev) {
		tls_log_handshake_failure("pop3", c->base.ip, failure);
		pop3_conn_free(c);
		return;
	}
	c->bev = bev;
	setup_bufferevent(c);
	char description[128];
	tls_describe(bufferevent_openssl_get_ssl(c->bev), description, sizeof(description));
	log_info("pop3", "event=tls client=%s tls=\"%s\"", c->base.ip, description);
	if (c->after_stls)
		pop3_session_tls_started(c->session);
	else
		pop3_session_greeting(c->session, &c->out);
	flush_out(c);
	pop3_conn_process(c); /* starts the deadline for the first command */
}

static void start_tls(struct pop3_conn *c)
{
	/* RFC 2595 4: input pipelined after STLS arrived in clear and is thrown away. */
	SSL *ssl = tls_new_session(c->base.gen->tls, TLS_POLICY_STRICT);

	if (!ssl) {
		close_after_flush(c);
		return;
	}
	c->handshake = connection_start_tls(c->srv->base, c->srv->workers, c->bev, ssl,
		tls_ready, c);
	c->bev = NULL;
	c->after_stls = true;
	arm_command_deadline(c); /* the handshake and the next command */
}

/* ---- command lines ---- */

static void handle_action(struct pop3_conn *c, enum pop3_action action)
{
	switch (action) {
	case POP3_ACTION_NONE:
		flush_out(c);
		break;
	case POP3_ACTION_CLOSE:
		flush_out(c);
		close_after_flush(c);
		break;
	case POP3_ACTION_STARTTLS:
		flush_out(c);
		start_tls(c);
		break;
	case POP3_ACTION_CHECK_PASSWORD:
		if (daemon_login_blocked(c->srv, &c->base, "pop3")) {
			handle_action(c, pop3_session_auth_blocked(c->session, &c->out));
			break;
		}
		flush_out(c);
		job_start(c, password_work, password_done);
		break;
	case POP3_ACTION_OPEN_MAILDROP:
		flush_out(c);
		job_start(c, open_work, open_done);
		break;
	case POP3_ACTION_RETRIEVE:
		start_retrieve(c);
		break;
	case POP3_ACTION_LISTING:
		c->listing = true;
		listing_pump(c); /* when it ends at once, pop3_conn_process goes on reading */
		break;
	case POP3_ACTION_COMMIT:
		flush_out(c);
		job_start(c, commit_work, commit_done);
		break;
	}
}

static bool busy(const struct pop3_conn *c)
{
	return c->closing || c->job_pending || c->retr_fd >= 0 || c->listing || c->handshake;
}

static void pop3_conn_process(struct pop3_conn *c)
{
	char line[POP3_COMMAND_LINE_MAX + 1];

	while (!busy(c)) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > SESSION_OUTPUT_BUFFER_MAX)
			break; /* resumed by pop3_write_cb when the client reads */
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			/* + 1: the CR of a line of exactly the maximum may be here without its LF. */
			if (evbuffer_get_length(in) > POP3_COMMAND_LINE_MAX + 1) {
				evbuffer_drain(in, evbuffer_get_length(in));
				c->discarding_line = true;
			}
			arm_command_deadline(c);
			break;
		}
		connection_deadline_disarm(&c->deadline);
		daemon_conn_touch(c->srv, &c->base);
		size_t len = (size_t)eol.pos;
		enum pop3_action action;
		if (c->discarding_line || len > POP3_COMMAND_LINE_MAX) {
			evbuffer_drain(in, len + eol_len);
			c->discarding_line = false;
			action = pop3_session_line_too_long(c->session, &c->out);
		} else {
			evbuffer_remove(in, line, len);
			evbuffer_drain(in, eol_len);
			action = pop3_session_feed_line(c->session, line, len, &c->out);
		}
		handle_action(c, action);
	}
}

static void pop3_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	pop3_conn_process(arg);
}

static void pop3_write_cb(struct bufferevent *bev, void *arg)
{
	struct pop3_conn *c = arg;

	(void)bev;
	if (c->closing)
		return;
	if (c->retr_fd >= 0)
		retrieve_pump(c);
	else if (!c->listing || listing_pump(c))
		pop3_conn_process(c);
}

static void pop3_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pop3_conn *c = arg;

	(void)bev;
	if (c->closing)
		return;
	if (what & BEV_EVENT_TIMEOUT)
		log_info("pop3", "event=timeout client=%s reason=not_reading", c->base.ip);
	/* EOF, error or timeout: end without UPDATE, so nothing is deleted (RFC 1939 6). */
	if (c->job_pending) {
		c->gone = true;
		bufferevent_free(c->bev);
		c->bev = NULL;
		return;
	}
	pop3_conn_free(c);
}

/* RFC 1939 3: the autologout timer expired: close without entering UPDATE. */
static void command_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_conn *c = arg;

	(void)fd;
	(void)what;
	connection_deadline_expired(&c->deadline);
	if (c->job_pending || c->closing || c->retr_fd >= 0 || c->listing)
		return;
	log_info("pop3", "event=timeout client=%s", c->base.ip);
	close_after_flush(c);
}

static void pop3_conn_shutdown(struct daemon_conn *conn)
{
	struct pop3_conn *c = (struct pop3_conn *)conn;

	/* A running UPDATE finishes (commit_done closes); anything else ends now, without
	 * deleting: the client has not said QUIT. */
	if (c->job_pending || c->closing)
		return;
	if (c->retr_fd >= 0) {
		close(c->retr_fd);
		c->retr_fd = -1;
	}
	close_after_flush(c);
}

/* A full house sheds this connection (daemon.h), one not logged in: it is closed at once,
 * without UPDATE (RFC 1939 6). */
static const char *pop3_conn_shed(struct daemon_conn *conn)
{
	struct pop3_conn *c = (struct pop3_conn *)conn;

	if (c->job_pending || c->closing)
		return NULL; /* a password check or maildrop opening must end with its reply */
	if (c->bev) {
		static const char reply[] = "-ERR [SYS/TEMP] server busy, closing idle connection\r\n";
		connection_send_last(c->bev, reply, sizeof(reply) - 1);
	}
	pop3_conn_free(c);
	return "idle";
}

static void accept_connection(struct daemon *srv, evutil_socket_t fd,
	const struct sockaddr *addr, bool implicit_tls, bool stls_offered)
{
	struct pop3_conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->retr_fd = -1;
	c->base.shed = pop3_conn_shed;
	if (!daemon_conn_admit(srv, &c->base, addr, ADMISSION_OWNER)) {
		if (!implicit_tls) {
			static const char busy_reply[] = "-ERR [SYS/TEMP] too many connections\r\n";
			(void)!send(fd, busy_reply, sizeof(busy_reply) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->base.shutdown = pop3_conn_shutdown;
	c->connected_at = time(NULL);
	strbuf_init(&c->out);
	/* Already non-blocking: the listener accepts with SOCK_NONBLOCK. */
	SSL *ssl = implicit_tls ? tls_new_session(c->base.gen->tls, TLS_POLICY_STRICT) : NULL;
	if (ssl)
		c->handshake = tls_accept_start(srv->base, srv->workers, fd, ssl, tls_ready, c);
	else if (!implicit_tls)
		c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev && !c->handshake) {
		evutil_closesocket(fd);
		daemon_conn_release(srv, &c->base);
		free(c);
		return;
	}
	struct pop3_session_params params = {
		.cfg = &c->base.gen->cfg,
		.tls_active = implicit_tls,
		.stls_offered = stls_offered,
		.implementation = "mailpopbox " MAILPOPBOX_VERSION,
	};
	c->session = pop3_session_new(&params);
	log_info("pop3", "event=connect client=%s tls=%s", c->base.ip,
		implicit_tls ? "implicit" : stls_offered ? "stls" : "none");
	connection_deadline_init(&c->deadline, srv->base, command_deadline_cb, c);
	arm_command_deadline(c); /* also bounds an implicit TLS handshake */
	if (c->handshake)
		return; /* greeted in tls_ready */
	setup_bufferevent(c);
	pop3_session_greeting(c->session, &c->out);
	flush_out(c);
}

void pop3_server_accept(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr,
	bool implicit_tls)
{
	accept_connection(srv, fd, addr, implicit_tls, false);
}

void pop3_server_accept_stls(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr)
{
	accept_connection(srv, fd, addr, false, tls_available(srv->gen->tls));
}
