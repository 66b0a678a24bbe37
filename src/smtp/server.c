/* smtp/server.c: the SMTP glue on the connection layer (net/conn.h): command lines go to the
 * core (smtp/session.c) and its actions become work. DATA is streamed into the maildrop files
 * (or the owner's submission) as it arrives and committed on the worker pool: the 250 is
 * sent only after fsync. */
#include "smtp/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bounds.h"
#include "generation.h"
#include "ids.h"
#include "log.h"
#include "net/conn.h"
#include "net/transfer.h"
#include "smtp/checks.h"
#include "smtp/data.h"
#include "smtp/inbound.h"
#include "smtp/session.h"
#include "strbuf.h"

struct smtp_conn {
	struct net_conn *conn;
	const struct config *cfg;   /* the connection's generation's */
	struct smtp_session *session;
	struct strbuf *out;          /* the connection's replies (net_conn_out) */
	struct smtp_inbound inbound; /* the message being received */
	unsigned messages;
	struct smtp_dnsbl_check *dnsbl; /* the MX port's DNSBL check, until its verdict */
};

static void smtp_free(struct net_conn *conn, void *glue, char *summary, size_t size)
{
	struct smtp_conn *s = glue;

	(void)conn;
	smtp_inbound_abort(&s->inbound); /* a message not committed is not kept */
	free(s->dnsbl);                  /* a check that never started (no greeting) */
	snprintf(summary, size, "messages=%u", s->messages);
	smtp_session_free(s->session);
	free(s);
}

/* Moves the core's replies to the client. Refusals are logged with the command's outcome
 * (never the command line itself: it may carry credentials). */
static void flush_out(struct smtp_conn *s)
{
	if (s->out->len > 0 && (s->out->data[0] == '4' || s->out->data[0] == '5')) {
		char quoted[256];
		log_info("smtp", "event=reply client=%s reply=%s", net_conn_ip(s->conn),
			log_quote(quoted, sizeof(quoted), s->out->data, strcspn(s->out->data, "\r")));
	}
	net_conn_flush(s->conn);
}

/* ---- DATA ---- */

/* DATA is answered once the storage is open: 354, or the storage error itself. The
 * transfer then has an idle limit per read (RFC 5321 4.5.3.2.5: a limit per data block) and
 * a deadline for the whole (smtp_data_deadline_seconds), and must keep SMTP_DATA_MIN_RATE
 * to count as progress when a full house sheds. */
static void begin_data(struct smtp_conn *s)
{
	char queue_id[32];

	ids_new(queue_id, sizeof(queue_id));
	smtp_session_set_queue_id(s->session, queue_id);
	if (smtp_inbound_begin(&s->inbound, s->session, net_conn_generation(s->conn),
		    time(NULL)) != 0) {
		smtp_session_storage_failed(s->session, errno, s->out);
	} else {
		net_conn_transfer_begin(s->conn, s->cfg->smtp_data_timeout,
			smtp_data_deadline_seconds(s->cfg->max_message_size,
				s->cfg->smtp_data_timeout), SMTP_DATA_MIN_RATE);
		smtp_session_data_ready(s->session, s->out);
	}
	flush_out(s);
}

static int commit_work(void *glue)
{
	smtp_inbound_commit(&((struct smtp_conn *)glue)->inbound);
	return 0; /* the outcome is the inbound's */
}

/* Runs also when the client has left: what was stored is logged and queued all the same. */
static void commit_done(struct net_conn *conn, void *glue, int result)
{
	struct smtp_conn *s = glue;

	(void)result;
	if (smtp_inbound_finish(&s->inbound, s->session, net_conn_ip(conn), net_conn_queue(conn),
		    s->out))
		s->messages++;
	flush_out(s);
}

/* A chunk of DATA (net_conn_transfer_feed) to the core, and the unstuffed result to every
 * maildrop file. */
static size_t take_data(void *glue, const char *data, size_t len, bool *end)
{
	/* On the stack, not _Thread_local: a thread-local array is in every thread's TLS block,
	 * zeroed (so resident) at each thread's start, workers' too. */
	char unstuffed[NET_TRANSFER_CHUNK + 1];
	struct smtp_conn *s = glue;
	size_t unstuffed_len = 0;
	size_t used = smtp_session_feed_data(s->session, data, len, unstuffed, &unstuffed_len);

	smtp_inbound_write(&s->inbound, unstuffed, unstuffed_len);
	*end = smtp_session_data_done(s->session);
	return used;
}

static void end_data(struct smtp_conn *s)
{
	net_conn_transfer_end(s->conn);
	if (smtp_session_data_end(s->session, s->out) == SMTP_DATA_DISCARD) {
		smtp_inbound_abort(&s->inbound);
		flush_out(s);
		return;
	}
	net_conn_job(s->conn, commit_work, commit_done);
}

/* ---- the DNSBL check at connect (smtp/checks.h): a job, so reading waits for it ---- */

static int dnsbl_work(void *glue)
{
	smtp_dnsbl_check_run(((struct smtp_conn *)glue)->dnsbl);
	return 0;
}

static void dnsbl_done(struct net_conn *conn, void *glue, int result)
{
	struct smtp_conn *s = glue;

	(void)conn;
	(void)result;
	smtp_dnsbl_check_finish(s->dnsbl, s->session);
	s->dnsbl = NULL;
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
	if (action == SMTP_ACTION_STARTTLS)
		net_conn_start_tls(s->conn);
	else if (action == SMTP_ACTION_BEGIN_DATA)
		begin_data(s);
	else if (action == SMTP_ACTION_CHECK_AUTH)
		net_conn_login(s->conn);
	else if (action == SMTP_ACTION_CLOSE)
		net_conn_close(s->conn);
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
			if (!net_conn_transfer_feed(s->conn, take_data))
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
			smtp_session_feed_line(s->session, line, len, s->out) :
			smtp_session_line_too_long(s->session, s->out));
	}
}

/* RFC 5321 4.5.3.2.7: 421 and close when the client takes too long. Whatever DATA was being
 * received is dropped when the connection is freed: nothing is kept. */
static void time_out(struct smtp_conn *s, const char *reason)
{
	log_info("smtp", "event=timeout client=%s state=%d reason=%s", net_conn_ip(s->conn),
		(int)smtp_session_state(s->session), reason);
	smtp_session_timeout(s->session, s->out);
	handle_action(s, SMTP_ACTION_CLOSE);
}

static void smtp_event(struct net_conn *conn, void *glue, enum net_event event)
{
	struct smtp_conn *s = glue;
	bool in_data = smtp_session_state(s->session) == SMTP_STATE_DATA;

	if (event == NET_EVENT_GREETING) {
		smtp_session_greeting(s->session, s->out);
		flush_out(s);
		if (s->dnsbl)
			net_conn_job(conn, dnsbl_work, dnsbl_done);
	} else if (event == NET_EVENT_INPUT) {
		smtp_process(s);
	} else if (event == NET_EVENT_TLS_READY) {
		/* After STARTTLS, or on the implicit TLS port (RFC 8314), where the session's
		 * reset is harmless since nothing was said yet. */
		smtp_session_tls_started(s->session, net_conn_tls(conn));
	} else if (event == NET_EVENT_DEADLINE) {
		time_out(s, in_data ? "data_deadline" : "command_deadline");
	} else if (event == NET_EVENT_READ_IDLE) {
		time_out(s, "data_idle");
	} else if (event == NET_EVENT_LOGIN_BLOCKED) {
		handle_action(s, smtp_session_auth_blocked(s->session, s->out));
	} else if (event == NET_EVENT_LOGIN_OK || event == NET_EVENT_LOGIN_FAILED) {
		handle_action(s, smtp_session_auth_result(s->session, event == NET_EVENT_LOGIN_OK,
			s->out));
	} else if (event == NET_EVENT_SHUTDOWN && !in_data) {
		/* A message being received is finished first (its commit's end stops it). */
		smtp_session_shutdown(s->session, s->out);
		handle_action(s, SMTP_ACTION_CLOSE);
	}
}

/* A full house sheds this connection: 421 (RFC 5321 3.8) and close at once; a message being
 * received is dropped, so nothing is kept. */
static void smtp_shed(struct net_conn *conn, void *glue, struct strbuf *last)
{
	struct smtp_conn *s = glue;

	(void)conn;
	strbuf_appendf(last, "421 4.7.0 %s Server busy, closing idle connection\r\n",
		s->cfg->hostname);
}

static const struct net_handler smtp_handler = {"smtp", smtp_event, smtp_shed, smtp_free,
	login_verify, login_describe};

static void smtp_accept(struct net_conn *conn, const struct net_protocol *protocol)
{
	struct smtp_conn *s = xcalloc(1, sizeof(*s));
	const struct generation *gen = net_conn_generation(conn);

	s->conn = conn;
	s->cfg = &gen->cfg;
	s->out = net_conn_out(conn);
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
	if (protocol == &smtp_server_mx)
		s->dnsbl = smtp_dnsbl_check_new(s->cfg, net_conn_ip(conn));
	log_info("smtp", "event=connect client=%s port=%s", net_conn_ip(conn), protocol->name);
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
