/* smtp/server.c: the SMTP glue on the connection layer (net/conn.h): command lines go to the
 * core (smtp/session.c) and its actions become work. DATA is streamed into the maildrop files
 * (or the owner's submission) as it arrives and committed on the worker pool: the 250 is
 * sent only after fsync. */
#include "smtp/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bounds.h"
#include "generation.h"
#include "ids.h"
#include "log.h"
#include "net/conn.h"
#include "smtp/data.h"
#include "smtp/inbound.h"
#include "smtp/session.h"
#include "strbuf.h"

/* Bytes of DATA handed to the core in one step. */
#define DATA_CHUNK (64 * 1024)

struct smtp_conn {
	struct net_conn *conn;
	const struct config *cfg;   /* the connection's generation's */
	enum tls_policy tls_policy; /* strict on the submission ports */
	struct smtp_session *session;
	struct strbuf out;
	struct smtp_inbound inbound; /* the message being received */
	time_t connected_at;
	unsigned messages;
	time_t data_started;  /* when the current DATA transfer began */
	uint64_t data_octets; /* octets of it received so far */
};

/* In DATA the read timeout is an idle one (RFC 5321 4.5.3.2.5: a limit per data block) and
 * the whole transfer has a deadline (smtp_data_deadline_seconds); a command line has the
 * command deadline (net/conn.h). The write timeout catches a client that stops reading. */
static void set_timeouts(struct smtp_conn *s)
{
	bool in_data = smtp_session_state(s->session) == SMTP_STATE_DATA;

	net_conn_set_timeouts(s->conn, in_data ? s->cfg->smtp_data_timeout : 0,
		in_data ? s->cfg->smtp_data_timeout : s->cfg->smtp_command_timeout);
}

/* octets more of DATA arrived. The transfer counts as progress, for the shedding of a full
 * house, while it keeps up SMTP_DATA_MIN_RATE on average since DATA began. */
static void note_data_progress(struct smtp_conn *s, size_t octets)
{
	s->data_octets += octets;
	if (s->data_octets >= (uint64_t)(time(NULL) - s->data_started) * SMTP_DATA_MIN_RATE)
		net_conn_touch(s->conn);
}

static void smtp_free(struct net_conn *conn, void *glue)
{
	struct smtp_conn *s = glue;

	smtp_inbound_abort(&s->inbound); /* a message not committed is not kept */
	log_info("smtp", "event=disconnect client=%s messages=%u seconds=%ld", net_conn_ip(conn),
		s->messages, (long)(time(NULL) - s->connected_at));
	smtp_session_free(s->session);
	strbuf_free(&s->out);
	free(s);
}

/* Moves the core's replies to the client. Refusals are logged with the command's outcome
 * (never the command line itself: it may carry credentials). */
static void flush_out(struct smtp_conn *s)
{
	if (s->out.len == 0)
		return;
	if (s->out.data[0] == '4' || s->out.data[0] == '5') {
		char quoted[256];
		log_info("smtp", "event=reply client=%s reply=%s", net_conn_ip(s->conn),
			log_quote(quoted, sizeof(quoted), s->out.data, strcspn(s->out.data, "\r")));
	}
	net_conn_send(s->conn, s->out.data, s->out.len);
	strbuf_reset(&s->out);
}

/* ---- DATA ---- */

/* DATA is answered once the storage is open: 354, or the storage error itself. */
static void begin_data(struct smtp_conn *s)
{
	char queue_id[32];
	time_t now = time(NULL);

	ids_new(queue_id, sizeof(queue_id));
	smtp_session_set_queue_id(s->session, queue_id);
	if (smtp_inbound_begin(&s->inbound, s->session, net_conn_generation(s->conn), now) != 0) {
		smtp_session_storage_failed(s->session, errno, &s->out);
	} else {
		/* The transfer must end within the whole-DATA deadline. */
		s->data_started = now;
		s->data_octets = 0;
		net_conn_deadline(s->conn, smtp_data_deadline_seconds(s->cfg->max_message_size,
			s->cfg->smtp_data_timeout));
		smtp_session_data_ready(s->session, &s->out);
	}
	flush_out(s);
	set_timeouts(s);
}

static void commit_work(void *glue)
{
	smtp_inbound_commit(&((struct smtp_conn *)glue)->inbound);
}

/* Runs also when the client has left: what was stored is logged and queued all the same. */
static void commit_done(struct net_conn *conn, void *glue)
{
	struct smtp_conn *s = glue;

	if (smtp_inbound_finish(&s->inbound, s->session, net_conn_ip(conn), net_conn_queue(conn),
		    &s->out))
		s->messages++;
	flush_out(s);
	set_timeouts(s);
}

/* Feeds buffered DATA to the core and the unstuffed result to every maildrop file. Returns
 * true when the end of data was reached. */
static bool feed_data(struct smtp_conn *s)
{
	/* On the stack, not _Thread_local: a thread-local array is in every thread's TLS block,
	 * zeroed (so resident) at each thread's start, workers' too. */
	char chunk_out[DATA_CHUNK + 1];
	struct evbuffer *in = net_conn_input(s->conn);
	size_t before = evbuffer_get_length(in);
	bool done = false;

	while (!done && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		if (evbuffer_peek(in, DATA_CHUNK, NULL, &vec, 1) < 1)
			break;
		size_t len = vec.iov_len < DATA_CHUNK ? vec.iov_len : DATA_CHUNK;
		size_t out_len = 0;
		size_t used = smtp_session_feed_data(s->session, vec.iov_base, len, chunk_out,
			&out_len);
		smtp_inbound_write(&s->inbound, chunk_out, out_len);
		evbuffer_drain(in, used);
		done = smtp_session_data_done(s->session);
	}
	note_data_progress(s, before - evbuffer_get_length(in));
	return done;
}

static void end_data(struct smtp_conn *s)
{
	net_conn_deadline_stop(s->conn);
	if (smtp_session_data_end(s->session, &s->out) == SMTP_DATA_DISCARD) {
		smtp_inbound_abort(&s->inbound);
		flush_out(s);
		set_timeouts(s);
		return;
	}
	net_conn_job(s->conn, commit_work, commit_done);
}

/* ---- AUTH (the login gate is the layer's) ---- */

static bool login_verify(void *glue)
{
	return smtp_session_verify_password(((struct smtp_conn *)glue)->session);
}

static void login_describe(void *glue, bool ok, char *buf, size_t size)
{
	struct smtp_conn *s = glue;

	if (ok)
		snprintf(buf, size, "domain=%s", smtp_session_auth_server(s->session)->domain);
}

/* ---- command lines ---- */

static void handle_action(struct smtp_conn *s, enum smtp_action action)
{
	flush_out(s);
	switch (action) {
	case SMTP_ACTION_NONE:
		break;
	case SMTP_ACTION_BEGIN_DATA:
		begin_data(s);
		break;
	case SMTP_ACTION_STARTTLS:
		net_conn_start_tls(s->conn, s->tls_policy);
		break;
	case SMTP_ACTION_CHECK_AUTH:
		net_conn_login(s->conn);
		break;
	case SMTP_ACTION_CLOSE:
		net_conn_close(s->conn);
		break;
	}
}

static bool reads_lines(enum smtp_state state)
{
	return state == SMTP_STATE_CONNECTED || state == SMTP_STATE_READY ||
		state == SMTP_STATE_MAIL || state == SMTP_STATE_RCPT ||
		state == SMTP_STATE_AUTH_RESPONSE;
}

/* Takes as much buffered input as the session's state allows. */
static void smtp_process(struct smtp_conn *s)
{
	char line[SMTP_COMMAND_LINE_MAX + 1];
	size_t len;

	while (net_conn_ready(s->conn)) {
		enum smtp_state state = smtp_session_state(s->session);
		if (state == SMTP_STATE_DATA) {
			if (!feed_data(s))
				break;
			end_data(s);
			continue;
		}
		if (!reads_lines(state))
			break;
		enum net_line_result got = net_conn_read_line(s->conn, line, &len);
		if (got == NET_LINE_NONE)
			break;
		handle_action(s, got == NET_LINE_OK ?
			smtp_session_feed_line(s->session, line, len, &s->out) :
			smtp_session_line_too_long(s->session, &s->out));
	}
}

/* RFC 5321 4.5.3.2.7: 421 and close when the client takes too long. Whatever DATA was being
 * received is dropped when the connection is freed: nothing is kept. */
static void time_out(struct smtp_conn *s, const char *reason)
{
	log_info("smtp", "event=timeout client=%s state=%d reason=%s", net_conn_ip(s->conn),
		(int)smtp_session_state(s->session), reason);
	smtp_session_timeout(s->session, &s->out);
	handle_action(s, SMTP_ACTION_CLOSE);
}

/* The handshake ended, after STARTTLS or on the implicit TLS port (RFC 8314), where the
 * session's reset is harmless since nothing was said yet. */
static void tls_ready(struct smtp_conn *s)
{
	char description[128];

	net_conn_tls_describe(s->conn, description, sizeof(description));
	smtp_session_tls_started(s->session, description);
	log_info("smtp", "event=starttls client=%s tls=\"%s\"", net_conn_ip(s->conn), description);
	if (net_conn_implicit_tls(s->conn)) {
		smtp_session_greeting(s->session, &s->out);
		flush_out(s);
	}
}

static void smtp_event(struct net_conn *conn, void *glue, enum net_event event)
{
	struct smtp_conn *s = glue;
	bool in_data = smtp_session_state(s->session) == SMTP_STATE_DATA;

	(void)conn;
	if (event == NET_EVENT_INPUT)
		smtp_process(s);
	else if (event == NET_EVENT_TLS_READY)
		tls_ready(s);
	else if (event == NET_EVENT_DEADLINE)
		time_out(s, in_data ? "data_deadline" : "command_deadline");
	else if (event == NET_EVENT_READ_IDLE)
		time_out(s, "data_idle");
	else if (event == NET_EVENT_LOGIN_BLOCKED)
		handle_action(s, smtp_session_auth_blocked(s->session, &s->out));
	else if (event == NET_EVENT_LOGIN_OK || event == NET_EVENT_LOGIN_FAILED)
		handle_action(s, smtp_session_auth_result(s->session, event == NET_EVENT_LOGIN_OK,
			&s->out));
	else if (event == NET_EVENT_SHUTDOWN && !in_data) {
		/* A message being received is finished first (its commit's end stops it). */
		smtp_session_shutdown(s->session, &s->out);
		handle_action(s, SMTP_ACTION_CLOSE);
	}
}

/* A full house sheds this connection: 421 (RFC 5321 3.8) and close at once; a message being
 * received is dropped, so nothing is kept. */
static const char *smtp_shed(struct net_conn *conn, void *glue, struct strbuf *last)
{
	struct smtp_conn *s = glue;

	(void)conn;
	strbuf_appendf(last, "421 4.7.0 %s Server busy, closing idle connection\r\n",
		s->cfg->hostname);
	return smtp_session_state(s->session) == SMTP_STATE_DATA ? "slow_data" : "idle";
}

static const struct net_handler smtp_handler = {"smtp", smtp_event, smtp_shed, smtp_free,
	login_verify, login_describe};

static void smtp_accept(struct net_conn *conn, const struct net_protocol *protocol)
{
	struct smtp_conn *s = xcalloc(1, sizeof(*s));
	const struct generation *gen = net_conn_generation(conn);

	s->conn = conn;
	s->cfg = &gen->cfg;
	s->tls_policy = protocol->tls_policy;
	s->connected_at = time(NULL);
	strbuf_init(&s->out);
	net_conn_attach(conn, &smtp_handler, s);
	net_conn_set_lines(conn, SMTP_COMMAND_LINE_MAX, s->cfg->smtp_command_timeout);
	struct smtp_session_params params = {
		.cfg = s->cfg,
		.client_ip = net_conn_ip(conn),
		.tls_available = tls_available(gen->tls),
		.tls_active = net_conn_implicit_tls(conn),
		.submission = protocol != &smtp_server_mx,
	};
	s->session = smtp_session_new(&params);
	log_info("smtp", "event=connect client=%s port=%s", net_conn_ip(conn), protocol->name);
	set_timeouts(s);
	if (!net_conn_implicit_tls(conn)) { /* else greeted once TLS is up */
		smtp_session_greeting(s->session, &s->out);
		flush_out(s);
	}
}

static int smtp_port(const struct config *cfg, const struct net_protocol *protocol,
	bool *optional)
{
	if (protocol == &smtp_server_mx)
		return cfg->smtp_port;
	if (protocol == &smtp_server_submission) {
		*optional = !cfg->submission_port_given;
		return cfg->submission_port;
	}
	*optional = !cfg->submission_tls_port_given;
	return cfg->submission_tls_port;
}

/* RFC 5321 3.8: 421 when the service is not available. */
static const char smtp_busy[] = "421 4.7.0 Too many connections, try again later\r\n";

const struct net_protocol smtp_server_mx = {"mx", "SMTPPort", 25, smtp_port, ADMISSION_MX,
	NET_TLS_PLAIN, TLS_POLICY_OPPORTUNISTIC, smtp_busy, smtp_accept};
const struct net_protocol smtp_server_submission = {"submission", "SubmissionPort", 587,
	smtp_port, ADMISSION_OWNER, NET_TLS_PLAIN, TLS_POLICY_STRICT, smtp_busy, smtp_accept};
const struct net_protocol smtp_server_submissions = {"submissions", "SubmissionTLSPort", 465,
	smtp_port, ADMISSION_OWNER, NET_TLS_IMPLICIT, TLS_POLICY_STRICT, smtp_busy, smtp_accept};
