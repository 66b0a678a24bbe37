/* queue/submit.c: finishing the owner's submitted message (send-as, Date/Message-ID, DKIM)
 * and storing it: local recipients' maildrops and the outbound spool, each durable before the
 * 250. Runs on a worker thread; it only touches its own struct submission. */
#include "queue/submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "mail/dkim.h"
#include "mail/headers.h"
#include "mail/sendas.h"
#include "mail/trace.h"
#include "queue/spool.h"
#include "store/maildrop.h"

#define COPY_CHUNK (64 * 1024)

struct submission {
	/* Copied from the session by submission_begin, on the event loop. */
	const struct config *cfg;
	const struct server_config *submitter; /* the authenticated Server */
	struct dkim_signer *signer;            /* its DKIM key, or NULL */
	char queue_id[32];
	char sender[SMTP_PATH_MAX + 1];        /* MAIL FROM (send-as may replace it) */
	struct smtp_rcpt *rcpts;               /* a copy of the transaction's recipients */
	size_t rcpt_count;
	enum smtp_dsn_ret ret;
	char envid[SMTP_ENVID_MAX + 1];
	bool body_8bit, smtputf8;
	struct strbuf received;                /* our "Received:" field for this hop */
	time_t now;

	/* The message as received. */
	char *raw_path;
	int raw_fd;
	int write_error;

	/* Results of submission_commit. */
	struct submission_outcome outcome;
};

struct submission *submission_begin(const struct config *cfg, const struct smtp_tx *tx,
	struct dkim_signer *signer, const struct strbuf *received, time_t now)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/tmp/%s.raw", cfg->spool_path, tx->queue_id);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	struct submission *sub = xcalloc(1, sizeof(*sub));
	sub->raw_fd = fd;
	sub->raw_path = xstrdup(path);
	sub->cfg = cfg;
	sub->submitter = tx->submitter;
	sub->signer = signer;
	snprintf(sub->queue_id, sizeof(sub->queue_id), "%s", tx->queue_id);
	snprintf(sub->sender, sizeof(sub->sender), "%s", tx->sender.address);
	sub->rcpt_count = tx->rcpt_count;
	sub->rcpts = xcalloc(tx->rcpt_count, sizeof(*sub->rcpts));
	memcpy(sub->rcpts, tx->rcpts, tx->rcpt_count * sizeof(*sub->rcpts));
	sub->ret = tx->ret;
	snprintf(sub->envid, sizeof(sub->envid), "%s", tx->envid);
	sub->body_8bit = tx->body_8bit;
	sub->smtputf8 = tx->smtputf8;
	strbuf_init(&sub->received);
	strbuf_append(&sub->received, received->data, received->len);
	sub->now = now;
	sub->outcome.sender = sub->sender;
	return sub;
}

void submission_write(struct submission *sub, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0 && !sub->write_error) {
		ssize_t n = write(sub->raw_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sub->write_error = errno;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

const struct submission_outcome *submission_outcome(const struct submission *sub)
{
	return &sub->outcome;
}

void submission_free(struct submission *sub)
{
	if (!sub)
		return;
	if (sub->raw_fd >= 0)
		close(sub->raw_fd);
	if (sub->raw_path)
		unlink(sub->raw_path);
	free(sub->raw_path);
	free(sub->rcpts);
	strbuf_free(&sub->received);
	free(sub);
}

/* Something that receives the final message: a maildrop delivery or the spool message. */
struct sink {
	struct maildrop_delivery delivery;
	struct spool_message spool;
	bool is_spool;
};

static void sink_write(struct sink *k, const void *data, size_t len)
{
	if (k->is_spool)
		spool_message_write(&k->spool, data, len);
	else
		maildrop_delivery_write(&k->delivery, data, len);
}

/* Copies the body (the raw file from offset) to every sink. Returns 0 or -1. */
static int copy_body(struct submission *sub, off_t offset, struct sink *sinks, size_t count)
{
	char chunk[COPY_CHUNK]; /* not _Thread_local: see feed_data in smtp/server.c */

	for (;;) {
		ssize_t n = pread(sub->raw_fd, chunk, sizeof(chunk), offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		for (size_t i = 0; i < count; i++)
			sink_write(&sinks[i], chunk, (size_t)n);
		offset += n;
	}
}

/* Reads the header section into memory and rewrites it. On success final_headers holds the
 * header block to send (ending with the empty line) and *body_offset where the body starts. */
static int prepare_headers(struct submission *sub, struct strbuf *final_headers,
	off_t *body_offset)
{
	size_t cap = MAIL_HEADER_SECTION_MAX + 4;
	char *head = xmalloc(cap);
	ssize_t got = pread(sub->raw_fd, head, cap, 0);
	struct mail_headers h;
	size_t header_len = 0;
	char new_sender[SMTP_PATH_MAX + 1];
	char token[64];

	if (got < 0) {
		free(head);
		sub->outcome.result = SUBMIT_TEMPFAIL;
		return -1;
	}
	if (mail_headers_parse(head, (size_t)got, &h, &header_len) != MAIL_HEADERS_OK) {
		free(head);
		sub->outcome.result = SUBMIT_REJECTED;
		sub->outcome.reject_reply = "552 5.3.4 Header section too big";
		return -1;
	}
	free(head);
	if (sendas_apply(&h, sub->submitter->domain, new_sender) == SENDAS_APPLIED) {
		snprintf(sub->sender, sizeof(sub->sender), "%s", new_sender);
		sub->outcome.sendas = true;
	}
	/* RFC 5322 3.6: Date and Message-ID belong in every message; DKIM signs them. */
	snprintf(token, sizeof(token), "%s.mailpopbox", sub->queue_id);
	mail_headers_ensure_date_and_message_id(&h, sub->now, token, sub->submitter->domain);
	mail_headers_serialize(&h, final_headers);
	mail_headers_free(&h);
	/* A message of headers only still gets the empty line that ends the header section. */
	if (final_headers->len < 4 || memcmp(final_headers->data + final_headers->len - 4,
		"\r\n\r\n", 4) != 0)
		strbuf_append(final_headers, "\r\n", 2);
	*body_offset = (off_t)header_len;
	return 0;
}

static int sign_message(struct submission *sub, struct strbuf *final_headers, off_t body_offset)
{
	struct strbuf signature;
	char err[256];

	if (!sub->signer)
		return 0;
	strbuf_init(&signature);
	if (lseek(sub->raw_fd, body_offset, SEEK_SET) < 0 ||
	    dkim_signer_sign(sub->signer, final_headers->data, final_headers->len, sub->raw_fd,
		&signature, err, sizeof(err)) != 0) {
		/* Unsigned mail is still mail: large providers may file it as spam, but refusing
		 * the owner's message for it would be worse. Say it loudly. */
		log_error("submit", "event=dkim_failed id=%s error=\"%s\"", sub->queue_id, err);
		strbuf_free(&signature);
		return 0;
	}
	struct strbuf signed_headers;
	strbuf_init(&signed_headers);
	strbuf_append(&signed_headers, signature.data, signature.len);
	strbuf_append(&signed_headers, final_headers->data, final_headers->len);
	strbuf_free(final_headers);
	*final_headers = signed_headers;
	strbuf_free(&signature);
	sub->outcome.signed_dkim = true;
	return 0;
}

/* Opens one sink per local Server among the recipients plus one spool message for remote
 * recipients, and writes each its leading header block. */
static size_t open_sinks(struct submission *sub, const struct strbuf *final_headers,
	struct sink *sinks, size_t max, bool *failed)
{
	size_t n = 0;
	size_t remote = 0;

	*failed = false;
	for (size_t i = 0; i < sub->rcpt_count; i++) {
		const struct server_config *server = sub->rcpts[i].server;
		if (!server) {
			remote++;
			continue;
		}
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			if (sub->rcpts[j].server == server)
				seen = true;
		if (seen || n == max)
			continue;
		struct sink *k = &sinks[n];
		if (maildrop_delivery_begin(&k->delivery, server->maildrop_path) != 0) {
			*failed = true;
			return n;
		}
		n++;
		/* RFC 5321 4.4: Return-Path and Delivered-To belong to final delivery. */
		struct strbuf trace;
		strbuf_init(&trace);
		mail_trace_return_path(&trace, sub->sender);
		for (size_t j = 0; j < sub->rcpt_count; j++)
			if (sub->rcpts[j].server == server)
				mail_trace_delivered_to(&trace, sub->rcpts[j].address);
		strbuf_append(&trace, sub->received.data, sub->received.len);
		sink_write(k, trace.data, trace.len);
		sink_write(k, final_headers->data, final_headers->len);
		strbuf_free(&trace);
	}
	if (remote && n < max) {
		struct sink *k = &sinks[n];
		k->is_spool = true;
		if (spool_message_begin(&k->spool, sub->cfg->spool_path, sub->queue_id) != 0) {
			*failed = true;
			return n;
		}
		n++;
		sink_write(k, sub->received.data, sub->received.len);
		sink_write(k, final_headers->data, final_headers->len);
	}
	return n;
}

static void build_entry(const struct submission *sub, struct spool_entry *e)
{
	spool_entry_init(e, sub->queue_id, sub->sender, (int64_t)sub->now);
	e->ret = sub->ret == SMTP_DSN_RET_FULL ? SPOOL_RET_FULL :
		sub->ret == SMTP_DSN_RET_HDRS ? SPOOL_RET_HDRS : SPOOL_RET_ABSENT;
	if (sub->envid[0])
		spool_set_string(&e->envid, sub->envid);
	e->body_8bit = sub->body_8bit;
	e->smtputf8 = sub->smtputf8;
	for (size_t i = 0; i < sub->rcpt_count; i++) {
		const struct smtp_rcpt *r = &sub->rcpts[i];
		if (r->server)
			continue;
		/* The SMTP NOTIFY bits and the spool's are the same RFC 3461 keywords. */
		unsigned notify = 0;
		if (r->notify & SMTP_NOTIFY_NEVER)
			notify |= SPOOL_NOTIFY_NEVER;
		if (r->notify & SMTP_NOTIFY_SUCCESS)
			notify |= SPOOL_NOTIFY_SUCCESS;
		if (r->notify & SMTP_NOTIFY_FAILURE)
			notify |= SPOOL_NOTIFY_FAILURE;
		if (r->notify & SMTP_NOTIFY_DELAY)
			notify |= SPOOL_NOTIFY_DELAY;
		spool_entry_add_recipient(e, r->address, r->orcpt[0] ? r->orcpt : NULL, notify);
	}
}

/* Makes the spool entry durable from its prepared message. Returns 0 or -1 with errno. */
static int commit_spool_entry(struct submission *sub, struct sink *k)
{
	struct spool_entry e;
	int r;

	build_entry(sub, &e);
	r = spool_message_commit(&k->spool, &e);
	spool_entry_free(&e);
	return r;
}

/* Stores the finished message in every sink, or in none: two phases, as in
 * maildrop_deliveries_commit. First every file is written out and synced (prepare), where a
 * full disk or an I/O error fails with nothing visible. Then the spool entry is committed
 * (not yet scheduled, so nothing is sent from it) and the maildrop copies are published. If a
 * publish fails, the published copies and the spool entry are taken back before the 4xx.
 * Returns 0, or -1 with errno of the first failure. */
static int commit_sinks(struct submission *sub, struct sink *sinks, size_t n)
{
	struct sink *spool = NULL;
	int saved = 0;

	for (size_t i = 0; i < n && !saved; i++) {
		int r = sinks[i].is_spool ? spool_message_prepare(&sinks[i].spool) :
			maildrop_delivery_prepare(&sinks[i].delivery);
		if (sinks[i].is_spool)
			spool = &sinks[i];
		if (r < 0)
			saved = errno;
	}
	/* The spool entry before the maildrop copies: until queue_add() nobody reads it, while a
	 * POP3 client may fetch a published copy at once. */
	if (!saved && spool) {
		if (commit_spool_entry(sub, spool) < 0)
			saved = errno;
		else
			sub->outcome.queued = true;
	}
	for (size_t i = 0; i < n && !saved; i++)
		if (!sinks[i].is_spool && maildrop_delivery_publish(&sinks[i].delivery) < 0)
			saved = errno;
	if (!saved)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (sinks[i].is_spool) {
			spool_message_abort(&sinks[i].spool);
			continue;
		}
		maildrop_delivery_unpublish(&sinks[i].delivery);
		maildrop_delivery_abort(&sinks[i].delivery);
	}
	if (sub->outcome.queued && spool_remove(sub->cfg->spool_path, sub->queue_id) < 0)
		log_error("submit", "event=unqueue_failed id=%s reason=\"%s\"", sub->queue_id,
			strerror(errno));
	sub->outcome.queued = false;
	errno = saved;
	return -1;
}

void submission_commit(struct submission *sub)
{
	struct strbuf final_headers;
	off_t body_offset = 0;
	struct sink *sinks;
	size_t max = sub->cfg->server_count + 1, n;
	bool failed;
	int error = 0;

	sub->outcome.result = SUBMIT_OK;
	if (sub->write_error) {
		sub->outcome.result = SUBMIT_TEMPFAIL;
		sub->outcome.error = sub->write_error;
		log_error("submit", "event=store_failed id=%s reason=\"%s\"", sub->queue_id,
			strerror(sub->outcome.error));
		return;
	}
	strbuf_init(&final_headers);
	if (prepare_headers(sub, &final_headers, &body_offset) != 0) {
		sub->outcome.error = errno;
		strbuf_free(&final_headers);
		return;
	}
	sign_message(sub, &final_headers, body_offset);
	sinks = xcalloc(max, sizeof(*sinks));
	n = open_sinks(sub, &final_headers, sinks, max, &failed);
	if (failed)
		error = errno;
	else if (copy_body(sub, body_offset, sinks, n) != 0 || commit_sinks(sub, sinks, n) != 0)
		error = errno;
	for (size_t i = 0; i < n; i++) {
		if (sinks[i].is_spool) {
			spool_message_release(&sinks[i].spool);
			continue;
		}
		if (!error)
			sub->outcome.local_count++;
		maildrop_delivery_release(&sinks[i].delivery);
	}
	free(sinks);
	strbuf_free(&final_headers);
	if (error) {
		log_error("submit", "event=store_failed id=%s reason=\"%s\"", sub->queue_id,
			strerror(error));
		sub->outcome.result = SUBMIT_TEMPFAIL;
		sub->outcome.error = error;
	}
}
