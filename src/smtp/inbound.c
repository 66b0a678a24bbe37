/* smtp/inbound.c: a received message's storage: the maildrop files of its target Servers or
 * the owner's submission, from DATA to the reply after the commit. */
#include "smtp/inbound.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "generation.h"
#include "log.h"
#include "mail/trace.h"
#include "queue/queue.h"
#include "queue/submit.h"
#include "smtp/session.h"
#include "store/maildrop_delivery.h"
#include "strbuf.h"
#include "verify/dkim_verify.h"

static void verify_free(struct smtp_inbound *m)
{
	if (m->verify) {
		verify_envelope_free(m->verify);
		free(m->verify);
		m->verify = NULL;
	}
	if (m->dkim)
		verify_dkim_free(m->dkim);
	m->dkim = NULL;
	free(m->trace_lens);
	m->trace_lens = NULL;
}

void smtp_inbound_abort(struct smtp_inbound *m)
{
	verify_free(m);
	submission_free(m->submission);
	m->submission = NULL;
	for (size_t i = 0; i < m->delivery_count; i++) {
		maildrop_delivery_abort(&m->deliveries[i]);
		maildrop_delivery_release(&m->deliveries[i]);
	}
	free(m->deliveries);
	m->deliveries = NULL;
	m->delivery_count = 0;
}

/* The owner's authenticated mail: kept as received until the end of data, then finished and
 * stored by submission_commit() on a worker. */
static int begin_submission(struct smtp_inbound *m, struct smtp_session *session,
	struct generation *gen, time_t now)
{
	const struct smtp_tx *tx = smtp_session_tx(session);
	struct strbuf received;

	strbuf_init(&received);
	mail_trace_received(&received, session, gen->cfg.hostname,
		tx->rcpt_count == 1 ? tx->rcpts[0].address : NULL, now);
	m->submission = submission_begin(&gen->cfg, tx, generation_dkim_signer(gen, tx->submitter),
		&received, now);
	strbuf_free(&received);
	if (m->submission)
		return 0;
	int error = errno;
	log_error("smtp", "event=store_failed id=%s spool=%s error=\"%s\"", tx->queue_id,
		gen->cfg.spool_path, strerror(error));
	errno = error;
	return -1;
}

/* A maildrop file per target Server, each starting with its trace headers. */
static int begin_deliveries(struct smtp_inbound *m, struct smtp_session *session,
	const struct config *cfg, time_t now)
{
	const struct smtp_tx *tx = smtp_session_tx(session);
	const struct server_config **servers = xcalloc(cfg->server_count, sizeof(*servers));
	size_t n = smtp_tx_servers(tx, servers, cfg->server_count);
	struct strbuf headers;
	int error = 0;

	m->deliveries = xcalloc(n, sizeof(*m->deliveries));
	m->trace_lens = xcalloc(n ? n : 1, sizeof(*m->trace_lens));
	/* Mail from outside (never the owner's: that is a submission): the sender checks. */
	if (verify_enabled(cfg) && !smtp_session_authenticated(session)) {
		m->verify = xmalloc(sizeof(*m->verify));
		verify_envelope_fill(m->verify, session, cfg);
		if (cfg->verify_senders)
			m->dkim = verify_dkim_new(tx->queue_id);
	}
	strbuf_init(&headers);
	for (size_t i = 0; i < n && !error; i++) {
		if (maildrop_delivery_begin(&m->deliveries[i], servers[i]->maildrop_path) != 0) {
			error = errno;
			log_error("smtp", "event=store_failed id=%s maildrop=%s error=\"%s\"",
				tx->queue_id, servers[i]->maildrop_path, strerror(error));
			break;
		}
		m->delivery_count++;
		strbuf_reset(&headers);
		mail_trace_headers(&headers, session, servers[i], cfg->hostname, now);
		m->trace_lens[i] = headers.len;
		maildrop_delivery_write(&m->deliveries[i], headers.data, headers.len);
	}
	strbuf_reset(&headers);
	/* Postfix's cleanup gives a message without one "<queue id@myhostname>"; the push engine
	 * finds a message at its destination by Message-ID (docs/clients.md). */
	char token[64];
	snprintf(token, sizeof(token), "%s.mailpopbox", tx->queue_id);
	mail_message_id_field(&headers, token, cfg->hostname);
	snprintf(m->message_id_field, sizeof(m->message_id_field), "%s", headers.data);
	mail_message_id_scan_init(&m->message_id_scan);
	m->message_id_cr_held = false;
	strbuf_free(&headers);
	free(servers);
	if (!error)
		return 0;
	smtp_inbound_abort(m); /* the files opened before the failing one */
	errno = error;
	return -1;
}

int smtp_inbound_begin(struct smtp_inbound *m, struct smtp_session *session,
	struct generation *gen, time_t now)
{
	if (smtp_session_tx(session)->submitter)
		return begin_submission(m, session, gen, now);
	return begin_deliveries(m, session, &gen->cfg, now);
}

static void deliveries_write(struct smtp_inbound *m, const void *data, size_t len)
{
	for (size_t i = 0; i < m->delivery_count; i++)
		maildrop_delivery_write(&m->deliveries[i], data, len);
}

static void write_held_cr(struct smtp_inbound *m)
{
	if (m->message_id_cr_held)
		deliveries_write(m, "\r", 1);
	m->message_id_cr_held = false;
}

static void write_message_id_field(struct smtp_inbound *m)
{
	deliveries_write(m, m->message_id_field, strlen(m->message_id_field));
}

/* Passes the header section through the Message-ID scan, octet by octet (it is bounded), and
 * returns how many octets of data it took; the rest goes straight to the files. */
static size_t deliveries_write_scanned(struct smtp_inbound *m, const char *data, size_t len)
{
	size_t start = 0, i;

	for (i = 0; i < len && mail_message_id_scan_active(&m->message_id_scan); i++) {
		switch (mail_message_id_scan_feed(&m->message_id_scan, data[i])) {
		case MAIL_MESSAGE_ID_WRITE:
			break;
		case MAIL_MESSAGE_ID_HOLD:
			deliveries_write(m, data + start, i - start);
			m->message_id_cr_held = true;
			start = i + 1;
			break;
		case MAIL_MESSAGE_ID_RELEASE:
			write_held_cr(m);
			break;
		case MAIL_MESSAGE_ID_INSERT:
			deliveries_write(m, data + start, i - start);
			write_message_id_field(m);
			write_held_cr(m);
			start = i;
			break;
		case MAIL_MESSAGE_ID_OVER:
			deliveries_write(m, data + start, i - start);
			write_held_cr(m);
			start = i;
			break;
		}
	}
	deliveries_write(m, data + start, i - start);
	return i;
}

void smtp_inbound_write(struct smtp_inbound *m, const void *data, size_t len)
{
	size_t scanned = 0;

	/* DKIM hashes the message as the sender signed it: before our Message-ID goes in. */
	if (m->dkim)
		verify_dkim_feed(m->dkim, data, len);
	if (m->delivery_count > 0 && mail_message_id_scan_active(&m->message_id_scan))
		scanned = deliveries_write_scanned(m, data, len);
	deliveries_write(m, (const char *)data + scanned, len - scanned);
	if (m->submission)
		submission_write(m->submission, data, len);
}

/* A message that ended inside its header section (headers only, or an empty message). */
static void finish_message_id(struct smtp_inbound *m)
{
	bool line_end_first;

	if (m->delivery_count == 0 || !mail_message_id_scan_active(&m->message_id_scan))
		return;
	if (mail_message_id_scan_missing_at_end(&m->message_id_scan, &line_end_first)) {
		if (line_end_first)
			deliveries_write(m, "\r\n", 2);
		write_message_id_field(m);
	}
	write_held_cr(m);
}

void smtp_inbound_commit(struct smtp_inbound *m)
{
	if (m->submission) {
		submission_commit(m->submission);
		m->commit_ok = submission_outcome(m->submission)->result == SUBMIT_OK;
		return;
	}
	finish_message_id(m);
	if (m->verify) {
		verify_message(m->verify, m->dkim, m->deliveries, m->trace_lens, m->delivery_count,
			&m->outcome);
		bool deliver = m->outcome.action == VERIFY_INBOX || m->outcome.action == VERIFY_JUNK;
		if (!deliver || m->outcome.error) {
			/* Refused, discarded, or a head that could not be rewritten (a 451): nothing
			 * is kept. */
			for (size_t i = 0; i < m->delivery_count; i++)
				maildrop_delivery_abort(&m->deliveries[i]);
			m->commit_ok = false;
			m->commit_error = deliver ? m->outcome.error : 0;
			return;
		}
	}
	/* Every maildrop gets the message or none does: a 451 after one copy was kept would
	 * make the client's retry deliver that copy twice. */
	m->commit_ok = maildrop_deliveries_commit(m->deliveries, m->delivery_count) == 0;
	m->commit_error = m->commit_ok ? 0 : errno;
}

/* The end of an authenticated submission: log, hand a queued entry to the scheduler, reply. */
static void submission_done(struct smtp_inbound *m, struct smtp_session *session,
	const char *client, struct queue *queue, struct strbuf *out)
{
	const struct smtp_tx *tx = smtp_session_tx(session);
	const struct submission_outcome *sub = submission_outcome(m->submission);
	char from[300];

	log_quote(from, sizeof(from), sub->sender, strlen(sub->sender));
	if (sub->result == SUBMIT_OK) {
		log_info("smtp", "event=submitted client=%s id=%s from=%s recipients=%zu local=%zu "
			"queued=%s sendas=%s dkim=%s", client, tx->queue_id, from, tx->rcpt_count,
			sub->local_count, sub->queued ? "yes" : "no", sub->sendas ? "yes" : "no",
			sub->signed_dkim ? "yes" : "no");
		if (sub->queued)
			queue_add_from_any_thread(queue, tx->queue_id);
		smtp_session_data_committed(session, true, out);
	} else if (sub->result == SUBMIT_TEMPFAIL) {
		smtp_session_data_failed(session, sub->error, out);
	} else {
		smtp_session_data_rejected(session, sub->reject_reply, out);
	}
	submission_free(m->submission);
	m->submission = NULL;
}

static void deliveries_done(struct smtp_inbound *m, struct smtp_session *session,
	const char *client, struct strbuf *out)
{
	const struct smtp_tx *tx = smtp_session_tx(session);
	char from[300];
	enum verify_action action = m->verify ? m->outcome.action : VERIFY_INBOX;

	if (action == VERIFY_REJECT || action == VERIFY_TEMPFAIL) {
		log_info("smtp", "event=refused client=%s id=%s by=%s", client, tx->queue_id,
			m->outcome.reason ? m->outcome.reason : "verify");
		smtp_session_data_rejected(session, m->outcome.reply, out);
	} else if (action == VERIFY_DISCARD) {
		/* The filter's wish: the client is told it was taken, nothing is kept. */
		log_info("smtp", "event=discarded client=%s id=%s by=%s", client, tx->queue_id,
			m->outcome.reason ? m->outcome.reason : "verify");
		smtp_session_data_committed(session, true, out);
	} else if (m->commit_ok) {
		log_info("smtp", "event=delivered client=%s id=%s from=%s recipients=%zu "
			"maildrops=%zu size=%llu folder=%s", client, tx->queue_id,
			log_quote(from, sizeof(from), tx->sender.address, strlen(tx->sender.address)),
			tx->rcpt_count, m->delivery_count, m->delivery_count ?
			(unsigned long long)m->deliveries[0].written : 0ULL,
			action == VERIFY_JUNK ? "Junk" : "INBOX");
		smtp_session_data_committed(session, true, out);
	} else {
		log_error("smtp", "event=store_failed client=%s id=%s error=commit reason=\"%s\"",
			client, tx->queue_id, strerror(m->commit_error));
		smtp_session_data_failed(session, m->commit_error, out);
	}
	for (size_t i = 0; i < m->delivery_count; i++)
		maildrop_delivery_release(&m->deliveries[i]);
	free(m->deliveries);
	m->deliveries = NULL;
	m->delivery_count = 0;
	verify_free(m);
	memset(&m->outcome, 0, sizeof(m->outcome));
}

bool smtp_inbound_finish(struct smtp_inbound *m, struct smtp_session *session,
	const char *client, struct queue *queue, struct strbuf *out)
{
	bool kept = m->commit_ok;

	if (m->submission)
		submission_done(m, session, client, queue, out);
	else
		deliveries_done(m, session, client, out);
	return kept;
}
