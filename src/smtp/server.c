/* smtp/server.c: bytes <-> SMTP lines for one client. Enforces the line limit where lines are
 * read, streams DATA into the maildrop files as it arrives, commits them on the worker pool
 * (the 250 is sent only after fsync), swaps in TLS on STARTTLS, and applies timeouts. */
#include "smtp/server.h"

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
#include "bounds.h"
#include "log.h"
#include "daemon.h"
#include "generation.h"
#include "smtp/data.h"
#include "smtp/session.h"
#include "queue/queue.h"
#include "queue/submit.h"
#include "mail/trace.h"
#include "store/maildrop.h"
#include "strbuf.h"
#include "tls.h"
#include "worker.h"

/* Bytes of DATA handed to the core in one step. */
#define DATA_CHUNK (64 * 1024)

struct smtp_conn {
	struct daemon_conn base; /* first: the registry hands us back this pointer */
	struct daemon *srv;
	struct bufferevent *bev;  /* NULL while a TLS handshake is under way */
	struct tls_accept *handshake;
	bool implicit_tls;        /* port 465: the greeting follows the handshake */
	enum tls_policy tls_policy; /* strict on the submission ports */
	struct smtp_session *session;
	struct strbuf out;
	struct maildrop_delivery *deliveries; /* one per target Server during DATA */
	size_t delivery_count;
	struct submission *submission;         /* the owner's mail during DATA, else NULL */
	bool discarding_line; /* inside an over-long command line */
	bool closing;         /* flush the output, then free */
	bool job_pending;     /* a commit is running on a worker */
	bool gone;            /* the client went away while a job was pending */
	bool commit_ok;
	int commit_error;     /* errno of a failed commit */
	bool auth_ok;
	struct event *auth_delay;  /* holds a failed AUTH's reply back (throttling) */
	bool output_paused;   /* too many unread replies: stop reading commands for now */
	time_t connected_at;
	unsigned messages;
	/* For the next command line or TLS handshake, and for a whole DATA transfer. */
	struct connection_deadline deadline;
	time_t data_started;  /* when the current DATA transfer began */
	uint64_t data_octets; /* octets of it received so far */
};

static void smtp_conn_process(struct smtp_conn *c);

/* Timeouts. In DATA the read timeout is an idle one (RFC 5321 4.5.3.2.5: a limit per data
 * block), and the whole transfer has a deadline too (smtp_data_deadline_seconds). A command
 * line, and a TLS handshake, get a deadline, started when we begin waiting and not moved by
 * partial input: a client trickling a byte at a time cannot hold a connection slot for ever
 * (slowloris). The write timeout catches a client that stops reading our replies. */
static void set_timeouts(struct smtp_conn *c)
{
	const struct config *cfg = &c->base.gen->cfg;
	bool in_data = smtp_session_state(c->session) == SMTP_STATE_DATA;
	struct timeval data = {cfg->smtp_data_timeout, 0};
	struct timeval write = {in_data ? cfg->smtp_data_timeout : cfg->smtp_command_timeout, 0};

	bufferevent_set_timeouts(c->bev, in_data ? &data : NULL, &write);
}

static void arm_command_deadline(struct smtp_conn *c)
{
	connection_deadline_arm(&c->deadline, c->base.gen->cfg.smtp_command_timeout);
}

/* DATA began: the transfer must end within the whole-DATA deadline. */
static void start_data_deadline(struct smtp_conn *c)
{
	const struct config *cfg = &c->base.gen->cfg;

	c->data_started = time(NULL);
	c->data_octets = 0;
	connection_deadline_arm(&c->deadline,
		smtp_data_deadline_seconds(cfg->max_message_size, cfg->smtp_data_timeout));
}

/* octets more of DATA arrived. The transfer counts as progress, for the shedding of a full
 * house (daemon.h), while it keeps up SMTP_DATA_MIN_RATE on average since DATA began. */
static void note_data_progress(struct smtp_conn *c, size_t octets)
{
	c->data_octets += octets;
	if (c->data_octets >= (uint64_t)(time(NULL) - c->data_started) * SMTP_DATA_MIN_RATE)
		daemon_conn_touch(c->srv, &c->base);
}

static void abort_deliveries(struct smtp_conn *c)
{
	submission_free(c->submission);
	c->submission = NULL;
	for (size_t i = 0; i < c->delivery_count; i++) {
		maildrop_delivery_abort(&c->deliveries[i]);
		maildrop_delivery_release(&c->deliveries[i]);
	}
	free(c->deliveries);
	c->deliveries = NULL;
	c->delivery_count = 0;
}

static void smtp_conn_free(struct smtp_conn *c)
{
	connection_deadline_free(&c->deadline);
	if (c->handshake)
		tls_accept_cancel(c->handshake);
	if (c->auth_delay)
		event_free(c->auth_delay);
	abort_deliveries(c);
	log_info("smtp", "event=disconnect client=%s messages=%u seconds=%ld", c->base.ip,
		c->messages, (long)(time(NULL) - c->connected_at));
	if (c->bev)
		bufferevent_free(c->bev);
	smtp_session_free(c->session);
	strbuf_free(&c->out);
	struct daemon *srv = c->srv;
	daemon_conn_release(srv, &c->base);
	free(c);
}

/* Moves the core's replies to the socket. Replies that refuse something are logged with the
 * command's outcome (never the command line itself: it may carry credentials later). */
static void flush_out(struct smtp_conn *c)
{
	if (c->out.len == 0)
		return;
	if (c->out.data[0] == '4' || c->out.data[0] == '5') {
		char quoted[256];
		size_t line = strcspn(c->out.data, "\r");
		log_info("smtp", "event=reply client=%s reply=%s", c->base.ip,
			log_quote(quoted, sizeof(quoted), c->out.data, line));
	}
	if (c->bev)
		connection_send(c->bev, c->out.data, c->out.len);
	strbuf_reset(&c->out);
}

static void smtp_conn_free_cb(void *arg)
{
	smtp_conn_free(arg);
}

static void close_after_flush(struct smtp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (!c->bev) { /* in a TLS handshake: there is nothing to flush, nor a way to say it */
		smtp_conn_free(c);
		return;
	}
	connection_close_when_flushed(c->srv->base, c->bev, smtp_conn_free_cb, c);
}

/* ---- DATA ---- */

/* The owner's authenticated mail: kept as received until the end of data, then finished and
 * stored by submission_commit() on a worker. Returns 0, or -1 with errno. */
static int begin_submission(struct smtp_conn *c, time_t now)
{
	const struct smtp_tx *tx = smtp_session_tx(c->session);
	struct strbuf received;

	strbuf_init(&received);
	mail_trace_received(&received, c->session, c->base.gen->cfg.hostname,
		tx->rcpt_count == 1 ? tx->rcpts[0].address : NULL, now);
	c->submission = submission_begin(&c->base.gen->cfg, tx,
		generation_dkim_signer(c->base.gen, tx->submitter), &received, now);
	strbuf_free(&received);
	if (!c->submission) {
		int error = errno;
		log_error("smtp", "event=store_failed id=%s spool=%s error=\"%s\"", tx->queue_id,
			c->base.gen->cfg.spool_path, strerror(error));
		errno = error;
		return -1;
	}
	return 0;
}

/* Opens the message's storage before DATA is answered: one maildrop file per Server, with its
 * trace headers, or the owner's submission. Returns 0, or -1 with errno and nothing open. */
static int open_storage(struct smtp_conn *c)
{
	const struct config *cfg = &c->base.gen->cfg;
	const struct server_config **servers = xcalloc(cfg->server_count, sizeof(*servers));
	char queue_id[32];
	struct strbuf headers;
	time_t now = time(NULL);

	daemon_new_id(queue_id, sizeof(queue_id));
	smtp_session_set_queue_id(c->session, queue_id);
	const struct smtp_tx *tx = smtp_session_tx(c->session);
	if (tx->submitter) {
		free(servers);
		return begin_submission(c, now);
	}
	size_t n = smtp_tx_servers(tx, servers, cfg->server_count);
	int error = 0;
	c->deliveries = xcalloc(n, sizeof(*c->deliveries));
	strbuf_init(&headers);
	for (size_t i = 0; i < n; i++) {
		if (maildrop_delivery_begin(&c->deliveries[i], servers[i]->maildrop_path) != 0) {
			error = errno;
			log_error("smtp", "event=store_failed id=%s maildrop=%s error=\"%s\"", queue_id,
				servers[i]->maildrop_path, strerror(error));
			break;
		}
		c->delivery_count++;
		strbuf_reset(&headers);
		mail_trace_headers(&headers, c->session, servers[i], cfg->hostname, now);
		maildrop_delivery_write(&c->deliveries[i], headers.data, headers.len);
	}
	strbuf_free(&headers);
	free(servers);
	if (error) {
		abort_deliveries(c); /* the files opened before the failing one */
		errno = error;
		return -1;
	}
	return 0;
}

/* DATA is answered once the storage is known to be open: 354, or the storage error itself. */
static void begin_data(struct smtp_conn *c)
{
	if (open_storage(c) != 0) {
		smtp_session_storage_failed(c->session, errno, &c->out);
	} else {
		start_data_deadline(c);
		smtp_session_data_ready(c->session, &c->out);
	}
	flush_out(c);
	set_timeouts(c);
}

static void commit_work(void *arg)
{
	struct smtp_conn *c = arg;

	if (c->submission) {
		submission_commit(c->submission);
		c->commit_ok = submission_outcome(c->submission)->result == SUBMIT_OK;
		return;
	}
	/* Every maildrop gets the message or none does: a 451 after one copy was kept would
	 * make the client's retry deliver that copy twice. */
	c->commit_ok = maildrop_deliveries_commit(c->deliveries, c->delivery_count) == 0;
	c->commit_error = c->commit_ok ? 0 : errno;
}

static void after_commit(struct smtp_conn *c);

/* The end of an authenticated submission: log, hand a queued entry to the scheduler, reply. */
static void submission_done(struct smtp_conn *c)
{
	const struct submission_outcome *sub = submission_outcome(c->submission);
	const struct smtp_tx *tx = smtp_session_tx(c->session);
	char from[300];

	log_quote(from, sizeof(from), sub->sender, strlen(sub->sender));
	switch (sub->result) {
	case SUBMIT_OK:
		log_info("smtp", "event=submitted client=%s id=%s from=%s recipients=%zu local=%zu queued=%s sendas=%s dkim=%s",
			c->base.ip, tx->queue_id, from, tx->rcpt_count, sub->local_count,
			sub->queued ? "yes" : "no", sub->sendas ? "yes" : "no",
			sub->signed_dkim ? "yes" : "no");
		c->messages++;
		if (sub->queued)
			queue_add(c->srv->queue, tx->queue_id);
		smtp_session_data_committed(c->session, true, &c->out);
		break;
	case SUBMIT_TEMPFAIL:
		smtp_session_data_failed(c->session, sub->error, &c->out);
		break;
	case SUBMIT_REJECTED:
		smtp_session_data_rejected(c->session, sub->reject_reply, &c->out);
		break;
	}
	submission_free(c->submission);
	c->submission = NULL;
	after_commit(c);
}

static void commit_done(void *arg)
{
	struct smtp_conn *c = arg;
	const struct smtp_tx *tx = smtp_session_tx(c->session);
	uint64_t size = c->delivery_count ? c->deliveries[0].written : 0;

	c->job_pending = false;
	if (c->submission) {
		submission_done(c);
		return;
	}
	if (c->commit_ok) {
		char from[300];
		log_info("smtp", "event=delivered client=%s id=%s from=%s recipients=%zu maildrops=%zu size=%llu",
			c->base.ip, tx->queue_id,
			log_quote(from, sizeof(from), tx->sender.address, strlen(tx->sender.address)),
			tx->rcpt_count, c->delivery_count, (unsigned long long)size);
		c->messages++;
	} else {
		log_error("smtp", "event=store_failed client=%s id=%s error=commit reason=\"%s\"",
			c->base.ip, tx->queue_id, strerror(c->commit_error));
	}
	for (size_t i = 0; i < c->delivery_count; i++)
		maildrop_delivery_release(&c->deliveries[i]);
	free(c->deliveries);
	c->deliveries = NULL;
	c->delivery_count = 0;
	if (c->commit_ok)
		smtp_session_data_committed(c->session, true, &c->out);
	else
		smtp_session_data_failed(c->session, c->commit_error, &c->out);
	after_commit(c);
}

/* Back to reading commands once the message's fate is known. */
static void after_commit(struct smtp_conn *c)
{
	if (c->gone) {
		smtp_conn_free(c);
		return;
	}
	/* The reply is progress: shedding the connection before the client could read a 250
	 * would make it send the stored message again. */
	daemon_conn_touch(c->srv, &c->base);
	flush_out(c);
	if (c->srv->stopping) {
		smtp_session_shutdown(c->session, &c->out);
		flush_out(c);
		close_after_flush(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
	set_timeouts(c);
	smtp_conn_process(c); /* pipelined commands may already be buffered */
}

static void end_data(struct smtp_conn *c)
{
	if (smtp_session_data_end(c->session, &c->out) == SMTP_DATA_DISCARD) {
		abort_deliveries(c);
		flush_out(c);
		set_timeouts(c);
		return;
	}
	c->job_pending = true;
	bufferevent_disable(c->bev, EV_READ);
	worker_pool_submit(c->srv->workers, commit_work, commit_done, c);
}

/* Feeds buffered DATA bytes to the core and the unstuffed result to every maildrop file.
 * Returns true when the end of data was reached. */
static bool feed_data(struct smtp_conn *c, struct evbuffer *in)
{
	static char chunk_out[DATA_CHUNK + 1];

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		if (evbuffer_peek(in, DATA_CHUNK, NULL, &vec, 1) < 1)
			break;
		size_t len = vec.iov_len < DATA_CHUNK ? vec.iov_len : DATA_CHUNK;
		size_t out_len = 0;
		size_t used = smtp_session_feed_data(c->session, vec.iov_base, len, chunk_out,
			&out_len);
		for (size_t i = 0; i < c->delivery_count; i++)
			maildrop_delivery_write(&c->deliveries[i], chunk_out, out_len);
		if (c->submission)
			submission_write(c->submission, chunk_out, out_len);
		evbuffer_drain(in, used);
		if (smtp_session_data_done(c->session))
			return true;
	}
	return false;
}

/* ---- AUTH ---- */

static void auth_work(void *arg)
{
	struct smtp_conn *c = arg;

	c->auth_ok = smtp_session_verify_password(c->session);
}

/* Gives the AUTH verdict (after the throttling delay, for a failure). */
static void auth_reply(struct smtp_conn *c)
{
	c->job_pending = false;
	enum smtp_action action = smtp_session_auth_result(c->session, c->auth_ok, &c->out);
	if (c->gone) {
		smtp_conn_free(c);
		return;
	}
	daemon_conn_touch(c->srv, &c->base);
	flush_out(c);
	if (action == SMTP_ACTION_CLOSE) {
		close_after_flush(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
	smtp_conn_process(c);
}

static void auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	event_free(c->auth_delay);
	c->auth_delay = NULL;
	auth_reply(c);
}

static void auth_done(void *arg)
{
	struct smtp_conn *c = arg;
	const struct server_config *server = smtp_session_auth_server(c->session);

	/* Never the login name or password: a failed login may be a password typed as a user. */
	if (c->auth_ok) {
		daemon_login_succeeded(c->srv, &c->base);
		log_info("smtp", "event=login client=%s domain=%s", c->base.ip, server->domain);
		auth_reply(c);
		return;
	}
	unsigned delay = daemon_login_failed(c->srv, &c->base, "smtp", NULL);
	if (delay == 0 || c->gone) {
		auth_reply(c);
		return;
	}
	/* Slow the guesser down; the job stays pending so nothing else is read meanwhile. */
	struct timeval wait = {(time_t)delay, 0};
	c->auth_delay = evtimer_new(c->srv->base, auth_delay_done, c);
	evtimer_add(c->auth_delay, &wait);
}

/* ---- STARTTLS ---- */

static void smtp_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtp_read_cb(struct bufferevent *bev, void *arg);
static void smtp_write_cb(struct bufferevent *bev, void *arg);

static void setup_bufferevent(struct smtp_conn *c)
{
	bufferevent_setcb(c->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, SESSION_INPUT_BUFFER_MAX);
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* The TLS handshake ended: after STARTTLS, or on the implicit TLS port (RFC 8314), where the
 * session's reset is harmless since nothing was said yet. */
static void tls_ready(void *arg, struct bufferevent *bev, const char *failure)
{
	struct smtp_conn *c = arg;

	c->handshake = NULL;
	if (!bev) {
		tls_log_handshake_failure("smtp", c->base.ip, failure);
		smtp_conn_free(c);
		return;
	}
	c->bev = bev;
	setup_bufferevent(c);
	char description[128];
	tls_describe(bufferevent_openssl_get_ssl(c->bev), description, sizeof(description));
	smtp_session_tls_started(c->session, description);
	log_info("smtp", "event=starttls client=%s tls=\"%s\"", c->base.ip, description);
	if (c->implicit_tls) {
		smtp_session_greeting(c->session, &c->out);
		flush_out(c);
	}
	smtp_conn_process(c); /* starts the deadline for the first command */
}

static void start_tls(struct smtp_conn *c)
{
	SSL *ssl = tls_new_session(c->base.gen->tls, c->tls_policy);

	if (!ssl) {
		log_error("smtp", "event=starttls_failed client=%s", c->base.ip);
		close_after_flush(c);
		return;
	}
	c->handshake = connection_start_tls(c->srv->base, c->srv->workers, c->bev, ssl,
		tls_ready, c);
	c->bev = NULL;
	arm_command_deadline(c); /* the handshake and the next EHLO */
}

/* ---- command lines ---- */

static void handle_action(struct smtp_conn *c, enum smtp_action action)
{
	switch (action) {
	case SMTP_ACTION_NONE:
		break;
	case SMTP_ACTION_BEGIN_DATA:
		begin_data(c);
		break;
	case SMTP_ACTION_STARTTLS:
		flush_out(c);
		start_tls(c);
		break;
	case SMTP_ACTION_CHECK_AUTH:
		if (daemon_login_blocked(c->srv, &c->base, "smtp")) {
			handle_action(c, smtp_session_auth_blocked(c->session, &c->out));
			flush_out(c);
			break;
		}
		flush_out(c);
		c->job_pending = true;
		bufferevent_disable(c->bev, EV_READ);
		worker_pool_submit(c->srv->workers, auth_work, auth_done, c);
		break;
	case SMTP_ACTION_CLOSE:
		flush_out(c);
		close_after_flush(c);
		break;
	}
}

/* Processes as much buffered input as the session state allows. */
static void smtp_conn_process(struct smtp_conn *c)
{
	char line[SMTP_COMMAND_LINE_MAX + 1];

	while (!c->closing && !c->job_pending) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		if (connection_output_pending(c->bev) > SESSION_OUTPUT_BUFFER_MAX) {
			c->output_paused = true;
			break;
		}
		enum smtp_state state = smtp_session_state(c->session);

		if (state == SMTP_STATE_DATA) {
			size_t before = evbuffer_get_length(in);
			bool done = feed_data(c, in);
			note_data_progress(c, before - evbuffer_get_length(in));
			if (!done)
				break;
			connection_deadline_disarm(&c->deadline);
			end_data(c);
			continue;
		}
		if (state != SMTP_STATE_CONNECTED && state != SMTP_STATE_READY &&
		    state != SMTP_STATE_MAIL && state != SMTP_STATE_RCPT &&
		    state != SMTP_STATE_AUTH_RESPONSE)
			break;
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			/* No complete line: drop an over-long one as it streams in (bounded memory). */
			/* + 1: the CR of a line of exactly the maximum may be here without its LF. */
			if (evbuffer_get_length(in) > SMTP_COMMAND_LINE_MAX + 1) {
				evbuffer_drain(in, evbuffer_get_length(in));
				c->discarding_line = true;
			}
			arm_command_deadline(c);
			break;
		}
		connection_deadline_disarm(&c->deadline);
		daemon_conn_touch(c->srv, &c->base);
		size_t len = (size_t)eol.pos;
		enum smtp_action action;
		if (c->discarding_line || len > SMTP_COMMAND_LINE_MAX) {
			evbuffer_drain(in, len + eol_len);
			c->discarding_line = false;
			action = smtp_session_line_too_long(c->session, &c->out);
		} else {
			evbuffer_remove(in, line, len);
			evbuffer_drain(in, eol_len);
			action = smtp_session_feed_line(c->session, line, len, &c->out);
		}
		if (action != SMTP_ACTION_STARTTLS)
			flush_out(c);
		handle_action(c, action);
		if (action == SMTP_ACTION_STARTTLS)
			break;
	}
	if (!c->closing && c->out.len)
		flush_out(c);
}

static void smtp_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	smtp_conn_process(arg);
}

static void smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_conn *c = arg;

	(void)bev;
	/* Our replies have drained: a client that pipelined without reading was paused in
	 * smtp_conn_process; resume it. */
	if (c->output_paused && !c->closing) {
		c->output_paused = false;
		smtp_conn_process(c);
	}
}

/* RFC 5321 4.5.3.2.7: 421 and close when the client takes too long. Whatever DATA was being
 * received is dropped when the connection is freed (abort_deliveries): nothing is kept. */
static void time_out(struct smtp_conn *c, const char *reason)
{
	if (c->closing)
		return;
	log_info("smtp", "event=timeout client=%s state=%d reason=%s", c->base.ip,
		(int)smtp_session_state(c->session), reason);
	smtp_session_timeout(c->session, &c->out);
	flush_out(c);
	close_after_flush(c);
}

static void smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)bev;
	if (c->closing)
		return; /* the closer frees the connection once the last reply is out */
	if ((what & BEV_EVENT_TIMEOUT) && !(what & BEV_EVENT_WRITING)) {
		time_out(c, "data_idle");
		return;
	}
	/* EOF, error, or a client that does not read: the connection is over. */
	if (c->job_pending) {
		c->gone = true;
		bufferevent_free(c->bev);
		c->bev = NULL;
		return;
	}
	smtp_conn_free(c);
}

static void command_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	connection_deadline_expired(&c->deadline);
	if (!c->job_pending)
		time_out(c, smtp_session_state(c->session) == SMTP_STATE_DATA ? "data_deadline" :
			"command_deadline");
}

static void smtp_conn_shutdown(struct daemon_conn *conn)
{
	struct smtp_conn *c = (struct smtp_conn *)conn;
	enum smtp_state state = smtp_session_state(c->session);

	/* A message being received or committed is finished first (commit_done closes). */
	if (state == SMTP_STATE_DATA || state == SMTP_STATE_COMMITTING || c->job_pending ||
	    c->closing)
		return;
	smtp_session_shutdown(c->session, &c->out);
	flush_out(c);
	close_after_flush(c);
}

/* A full house sheds this connection (daemon.h): 421 (RFC 5321 3.8) and close at once; a
 * message being received is dropped (abort_deliveries), so nothing is kept. */
static const char *smtp_conn_shed(struct daemon_conn *conn)
{
	struct smtp_conn *c = (struct smtp_conn *)conn;

	if (c->job_pending || c->closing)
		return NULL; /* a commit must end with its reply; a closing one is nearly gone */
	const char *reason = smtp_session_state(c->session) == SMTP_STATE_DATA ? "slow_data" :
		"idle";
	if (c->bev) {
		strbuf_reset(&c->out);
		strbuf_appendf(&c->out, "421 4.7.0 %s Server busy, closing idle connection\r\n",
			c->base.gen->cfg.hostname);
		connection_send_last(c->bev, c->out.data, c->out.len);
	}
	smtp_conn_free(c);
	return reason;
}

void smtp_server_accept(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr,
	enum smtp_listener listener)
{
	struct smtp_conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->base.shed = smtp_conn_shed;
	if (!daemon_conn_admit(srv, &c->base, addr,
		    listener == SMTP_LISTENER_MX ? ADMISSION_MX : ADMISSION_OWNER)) {
		/* RFC 5321 3.8: 421 when the service is not available. */
		static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->base.shutdown = smtp_conn_shutdown;
	c->connected_at = time(NULL);
	strbuf_init(&c->out);
	/* Already non-blocking: the listener accepts with SOCK_NONBLOCK. */
	c->implicit_tls = listener == SMTP_LISTENER_SUBMISSION_TLS;
	c->tls_policy = listener == SMTP_LISTENER_MX ? TLS_POLICY_OPPORTUNISTIC : TLS_POLICY_STRICT;
	SSL *ssl = c->implicit_tls ? tls_new_session(c->base.gen->tls, c->tls_policy) : NULL;
	if (ssl)
		c->handshake = tls_accept_start(srv->base, srv->workers, fd, ssl, tls_ready, c);
	else if (!c->implicit_tls)
		c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev && !c->handshake) {
		evutil_closesocket(fd);
		daemon_conn_release(srv, &c->base);
		free(c);
		return;
	}
	struct smtp_session_params params = {
		.cfg = &c->base.gen->cfg,
		.client_ip = c->base.ip,
		.tls_available = tls_available(c->base.gen->tls),
		.tls_active = c->implicit_tls,
		.submission = listener != SMTP_LISTENER_MX,
	};
	c->session = smtp_session_new(&params);
	static const char *const listener_names[] = {"mx", "submission", "submissions"};
	log_info("smtp", "event=connect client=%s port=%s", c->base.ip, listener_names[listener]);
	connection_deadline_init(&c->deadline, srv->base, command_deadline_cb, c);
	arm_command_deadline(c); /* also bounds an implicit TLS handshake */
	if (c->handshake)
		return; /* greeted in tls_ready */
	setup_bufferevent(c);
	smtp_session_greeting(c->session, &c->out);
	flush_out(c);
}
