/* verify/verify.c: the sender checks of one MX message on the worker, in the order the
 * verdicts depend on each other: SPF and DKIM, then DMARC over both, the
 * Authentication-Results field, then the milter, which sees that field as the first of the
 * message; then the policy (docs/smtp.md "Sender verification, DNSBLs and the milter") and
 * the rewrite of each maildrop file's head. All DNS goes through verify/dnsq.h under one
 * deadline; a DNS failure is a temperror, never a rejection. */
#include "verify/verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "filter/milter.h"
#include "filter/milter_codec.h"
#include "log.h"
#include "mail/headers.h"
#include "smtp/session.h"
#include "store/maildrop_delivery.h"
#include "verify/dkim_verify.h"
#include "verify/dmarc.h"
#include "verify/dnsq.h"
#include "verify/spf.h"

bool verify_enabled(const struct config *cfg)
{
	return cfg->verify_senders || cfg->milter != NULL;
}

void verify_envelope_fill(struct verify_envelope *env, const struct smtp_session *session,
	const struct config *cfg)
{
	const struct smtp_tx *tx = smtp_session_tx(session);
	const char *tls = smtp_session_tls_description(session);

	memset(env, 0, sizeof(*env));
	env->cfg = cfg;
	snprintf(env->client_ip, sizeof(env->client_ip), "%s", smtp_session_client_ip(session));
	snprintf(env->helo, sizeof(env->helo), "%s", smtp_session_helo(session));
	snprintf(env->mail_from, sizeof(env->mail_from), "%s", tx->sender.address);
	snprintf(env->queue_id, sizeof(env->queue_id), "%s", tx->queue_id);
	/* The milter's {tls_version}: the protocol, the first word of the description. */
	if (tls)
		snprintf(env->tls, sizeof(env->tls), "%.*s", (int)strcspn(tls, " "), tls);
	env->rcpts = xcalloc(tx->rcpt_count ? tx->rcpt_count : 1, sizeof(*env->rcpts));
	for (size_t i = 0; i < tx->rcpt_count; i++)
		env->rcpts[i] = xstrdup(tx->rcpts[i].address);
	env->rcpt_count = tx->rcpt_count;
}

void verify_envelope_free(struct verify_envelope *env)
{
	for (size_t i = 0; i < env->rcpt_count; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	env->rcpts = NULL;
	env->rcpt_count = 0;
}

/* ---- the head rewrite ---- */

/* The fields of one head with, beside each, whether it is an Authentication-Results field
 * that claims our authserv-id (RFC 8601 5: removed, so a sender cannot forge our verdict).
 * The flags follow the fields through the milter's inserts and removals. */
struct head_edit {
	struct mail_headers h;
	bool *forged;
	size_t forged_cap;
};

static void edit_reserve(struct head_edit *e)
{
	if (e->h.count + 1 > e->forged_cap) {
		e->forged_cap = e->h.count + 16;
		e->forged = xrealloc(e->forged, e->forged_cap * sizeof(*e->forged));
	}
}

/* Inserts one whole raw field at index (clamped to the end of the section). */
static void edit_insert(struct head_edit *e, size_t index, const char *raw, size_t len)
{
	edit_reserve(e);
	mail_headers_append(&e->h, "X", "");
	mail_headers_replace(&e->h, e->h.count - 1, raw, len);
	if (index >= e->h.count - 1) {
		e->forged[e->h.count - 1] = false;
		return;
	}
	struct mail_field f = e->h.fields[e->h.count - 1];
	memmove(&e->h.fields[index + 1], &e->h.fields[index],
		(e->h.count - 1 - index) * sizeof(f));
	memmove(&e->forged[index + 1], &e->forged[index], (e->h.count - 1 - index) * sizeof(bool));
	e->h.fields[index] = f;
	e->forged[index] = false;
}

static void edit_remove(struct head_edit *e, size_t index)
{
	mail_headers_remove(&e->h, index);
	memmove(&e->forged[index], &e->forged[index + 1], (e->h.count - index) * sizeof(bool));
}

/* RFC 5322 2.2: printable US-ASCII except colon. */
static bool field_name_ok(const char *name)
{
	if (!*name || strlen(name) > 998)
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == ':')
			return false;
	return true;
}

/* "Name: value" CRLF from a milter's change, its folding made CRLF + whitespace whatever line
 * ends the milter used (a line end not followed by whitespace would end the field early). */
static void milter_field(struct strbuf *out, const char *name, const char *value)
{
	size_t len = strlen(value);

	while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n'))
		len--;
	strbuf_reset(out);
	strbuf_appendf(out, "%s:%s", name, len && (value[0] == ' ' || value[0] == '\t') ? "" : " ");
	for (size_t i = 0; i < len; i++) {
		if (value[i] != '\r' && value[i] != '\n') {
			strbuf_append(out, &value[i], 1);
			continue;
		}
		if (value[i] == '\r' && i + 1 < len && value[i + 1] == '\n')
			i++;
		strbuf_append(out, "\r\n", 2);
		if (i + 1 < len && value[i + 1] != ' ' && value[i + 1] != '\t')
			strbuf_append(out, "\t", 1);
	}
	strbuf_append(out, "\r\n", 2);
}

/* The index-th (1-based) field named name, or MAIL_HEADERS_NOT_FOUND. */
static size_t nth_field(const struct mail_headers *h, const char *name, unsigned index)
{
	size_t at = 0;

	for (unsigned n = 0; n < index; n++) {
		at = mail_headers_index(h, name, n == 0 ? 0 : at + 1);
		if (at == MAIL_HEADERS_NOT_FOUND)
			return at;
	}
	return index == 0 ? MAIL_HEADERS_NOT_FOUND : at;
}

static void apply_change(struct head_edit *e, const struct milter_change *c, size_t shift_from,
	long index_shift, struct strbuf *raw)
{
	if (!field_name_ok(c->name))
		return; /* never written: it would corrupt the header section */
	milter_field(raw, c->name, c->value ? c->value : "");
	if (c->kind == MILTER_ADD_HEADER) {
		edit_insert(e, e->h.count, raw->data, raw->len);
	} else if (c->kind == MILTER_INSERT_HEADER) {
		long index = (long)c->index;
		/* Past the first copy's trace headers: past this copy's. */
		if (index >= (long)shift_from)
			index += index_shift;
		edit_insert(e, index < 0 ? 0 : (size_t)index, raw->data, raw->len);
	} else {
		size_t at = nth_field(&e->h, c->name, c->index);
		bool remove = !c->value || c->value[0] == '\0';
		if (at == MAIL_HEADERS_NOT_FOUND) {
			if (!remove) /* Postfix and Sendmail add it then */
				edit_insert(e, e->h.count, raw->data, raw->len);
		} else if (remove) {
			edit_remove(e, at);
		} else {
			mail_headers_replace(&e->h, at, raw->data, raw->len);
			e->forged[at] = false;
		}
	}
}

void verify_rewrite_head(const char *authres_field, const char *head, size_t head_len,
	const char *hostname, const struct milter_change *changes, size_t change_count,
	size_t shift_from, long index_shift, struct strbuf *out)
{
	struct head_edit e = {0};
	size_t lead_len = strlen(authres_field), parsed_len;
	struct strbuf whole, raw;

	strbuf_init(&whole);
	strbuf_init(&raw);
	strbuf_append(&whole, authres_field, lead_len);
	strbuf_append(&whole, head, head_len);
	if (mail_headers_parse(whole.data, whole.len, &e.h, &parsed_len) != MAIL_HEADERS_OK) {
		/* Too many fields to edit: our field still goes on top, nothing else changes. */
		strbuf_append(out, whole.data, whole.len);
		strbuf_free(&whole);
		strbuf_free(&raw);
		return;
	}
	e.forged_cap = e.h.count + 1;
	e.forged = xcalloc(e.forged_cap, sizeof(*e.forged));
	for (size_t i = lead_len > 0 ? 1 : 0; i < e.h.count; i++) {
		const struct mail_field *f = &e.h.fields[i];
		e.forged[i] = f->name_len == 22 &&
			strncasecmp(f->raw, "Authentication-Results", 22) == 0 &&
			authres_claims(f->raw + f->value_offset, f->raw_len - f->value_offset, hostname);
	}
	for (size_t i = 0; i < change_count; i++)
		apply_change(&e, &changes[i], shift_from, index_shift, &raw);
	for (size_t i = e.h.count; i-- > 0;)
		if (e.forged[i])
			edit_remove(&e, i);
	mail_headers_serialize(&e.h, out);
	/* Octets after the parsed section (none when head is a whole section). */
	strbuf_append(out, whole.data + parsed_len, whole.len - parsed_len);
	mail_headers_free(&e.h);
	free(e.forged);
	strbuf_free(&whole);
	strbuf_free(&raw);
}

/* ---- reading a file's head ---- */

struct file_head {
	char *data;
	size_t len;      /* the octets of the head (trace headers + header section) */
	bool complete;   /* the whole section was read and parsed: h holds it */
	struct mail_headers h;
	size_t fields;   /* fields in the first trace_len octets: this file's trace headers */
};

/* Reads, parses and measures the head of d; trace_len: the octets of its trace headers.
 * Release with file_head_free, whatever it returned. */
static int read_head(struct maildrop_delivery *d, size_t trace_len, struct file_head *fh)
{
	size_t header_len;

	memset(fh, 0, sizeof(*fh));
	fh->data = xmalloc(MAIL_HEADER_SECTION_MAX);
	ssize_t got = maildrop_delivery_read_head(d, fh->data, MAIL_HEADER_SECTION_MAX);
	if (got < 0)
		return -1;
	if (mail_headers_parse(fh->data, (size_t)got, &fh->h, &header_len) != MAIL_HEADERS_OK)
		return 0; /* too big to edit: the A-R field is only prepended */
	/* A section cut by the read (no blank line within it) is not one to edit either. */
	fh->complete = fh->h.separator[0] != '\0' || (uint64_t)got == d->written;
	if (!fh->complete) {
		mail_headers_free(&fh->h);
		return 0;
	}
	fh->len = header_len;
	size_t at = 0;
	for (size_t i = 0; i < fh->h.count && at < trace_len; i++) {
		at += fh->h.fields[i].raw_len;
		fh->fields++;
	}
	return 0;
}

static void file_head_free(struct file_head *fh)
{
	if (fh->complete)
		mail_headers_free(&fh->h);
	free(fh->data);
	fh->data = NULL;
}

/* ---- the checks ---- */

static const char *action_folder(enum verify_action a)
{
	return a == VERIFY_JUNK ? "Junk" : a == VERIFY_INBOX ? "INBOX" : "none";
}

static void log_verified(const struct verify_envelope *env, const struct authres *ar,
	enum verify_action action)
{
	char dkim[DKIM_SIGNATURES_MAX * 12 + 8] = "none";
	size_t used = 0;

	for (size_t i = 0; i < ar->dkim_count; i++)
		used += (size_t)snprintf(dkim + used, sizeof(dkim) - used, "%s%s", i ? "," : "",
			auth_result_name(ar->dkim[i].result));
	log_info("verify", "event=verified client=%s id=%s spf=%s dkim=%s dmarc=%s folder=%s",
		env->client_ip, env->queue_id, auth_result_name(ar->spf_mailfrom.result), dkim,
		auth_result_name(ar->dmarc.result), action_folder(action));
}

static void sender_checks(const struct verify_envelope *env, struct verify_dkim *dkim,
	const struct file_head *first, struct authres *ar)
{
	const struct config *cfg = env->cfg;
	struct dnsq_ctx dns;
	char from_domain[AUTHRES_VALUE_MAX] = "";

	dnsq_ctx_init(&dns, cfg->dns_resolver, VERIFY_DEADLINE_SECONDS);
	verify_spf(&dns, env->client_ip, env->helo, env->mail_from, &ar->spf_mailfrom,
		&ar->spf_helo);
	if (dkim) {
		verify_dkim_finish(dkim, &dns, ar);
	} else {
		ar->dkim_count = 1;
		ar->dkim[0].result = AUTH_TEMPERROR;
		snprintf(ar->dkim[0].comment, sizeof(ar->dkim[0].comment), "verifier unavailable");
	}
	if (first->complete)
		verify_dmarc_from_domain(&first->h, from_domain, sizeof(from_domain));
	verify_dmarc(&dns, env->client_ip, from_domain, cfg->dmarc_reject, ar);
}

/* The milter, fed our A-R field first and then the first file from its start. */
static void run_milter(const struct verify_envelope *env, const struct strbuf *lead,
	struct maildrop_delivery *first, struct milter_result *mr)
{
	char client_name[80];
	struct milter_envelope me = {
		.client_ip = env->client_ip,
		.client_name = client_name,
		.client_port = env->client_port,
		.helo = env->helo,
		.mail_from = env->mail_from,
		.rcpts = (const char *const *)env->rcpts,
		.rcpt_count = env->rcpt_count,
		.queue_id = env->queue_id,
		.hostname = env->cfg->hostname,
		.tls_version = env->tls[0] ? env->tls : NULL,
	};
	int fd = -1;

	snprintf(client_name, sizeof(client_name), "[%s]", env->client_ip);
	if (maildrop_delivery_flush(first) == 0)
		fd = maildrop_delivery_open_read(first);
	if (fd < 0) {
		memset(mr, 0, sizeof(*mr));
		mr->verdict = MILTER_FAILED;
		snprintf(mr->error, sizeof(mr->error), "cannot read the message: %s",
			strerror(errno));
		return;
	}
	milter_check(env->cfg->milter, env->cfg->milter_timeout, &me, lead->data ? lead->data : "",
		lead->len, fd, 0, mr);
	close(fd);
}

/* The milter's verdict into out; returns whether the message is still to be delivered. */
static void milter_policy(const struct verify_envelope *env, const struct milter_result *mr,
	struct verify_outcome *out)
{
	const char *verdict = milter_verdict_name(mr->verdict);
	char quoted[MILTER_SMTP_REPLY_MAX + 64];

	if (mr->verdict == MILTER_FAILED) {
		bool open = env->cfg->milter_fail_open;
		log_warn("verify", "event=milter_failed client=%s id=%s error=%s action=%s",
			env->client_ip, env->queue_id,
			log_quote(quoted, sizeof(quoted), mr->error, strlen(mr->error)),
			open ? "accept" : "tempfail");
		if (!open) {
			out->action = VERIFY_TEMPFAIL;
			out->reason = "milter";
			snprintf(out->reply, sizeof(out->reply),
				"451 4.7.1 Message filter unavailable, try again later");
		}
		return;
	}
	if (mr->verdict == MILTER_ACCEPT && mr->quarantine)
		verdict = "quarantine";
	log_info("verify", "event=milter_verdict client=%s id=%s verdict=%s reply=%s",
		env->client_ip, env->queue_id, verdict,
		log_quote(quoted, sizeof(quoted), mr->reply, strlen(mr->reply)));
	if (mr->verdict == MILTER_REJECT || mr->verdict == MILTER_TEMPFAIL) {
		out->action = mr->verdict == MILTER_REJECT ? VERIFY_REJECT : VERIFY_TEMPFAIL;
		out->reason = "milter";
		if (mr->reply[0])
			snprintf(out->reply, sizeof(out->reply), "%s", mr->reply);
		else
			snprintf(out->reply, sizeof(out->reply), "%s",
				mr->verdict == MILTER_REJECT ? "550 5.7.1 Message rejected" :
							      "451 4.7.1 Try again later");
	} else if (mr->verdict == MILTER_DISCARD) {
		out->action = VERIFY_DISCARD;
		out->reason = "milter";
	} else if (mr->quarantine) {
		out->action = VERIFY_JUNK;
	}
}

/* Every file's head rewritten with the A-R field and the milter's changes; first: ds[0]'s
 * head, read once for the checks and the rewrite. */
static int rewrite_heads(const struct verify_envelope *env, const struct strbuf *lead,
	const struct milter_result *mr, struct maildrop_delivery *ds, const size_t *trace_lens,
	size_t count, const struct file_head *first)
{
	const struct milter_change *changes = mr ? mr->changes : NULL;
	size_t change_count = mr ? mr->change_count : 0;
	struct strbuf head;
	int r = 0;

	strbuf_init(&head);
	for (size_t i = 0; i < count && r == 0; i++) {
		struct file_head other;
		const struct file_head *fh = first;

		if (i > 0) {
			fh = &other;
			if (read_head(&ds[i], trace_lens[i], &other) < 0) {
				file_head_free(&other);
				r = -1;
				break;
			}
		}
		strbuf_reset(&head);
		if (fh->complete)
			verify_rewrite_head(lead->data ? lead->data : "", fh->data, fh->len,
				env->cfg->hostname, changes, change_count,
				(lead->len ? 1 : 0) + first->fields,
				(long)fh->fields - (long)first->fields, &head);
		else
			strbuf_append(&head, lead->data ? lead->data : "", lead->len);
		bool same = head.len == fh->len && (fh->len == 0 || memcmp(head.data, fh->data,
			fh->len) == 0);
		size_t old_len = fh->len;
		if (i > 0)
			file_head_free(&other);
		if (!same) /* nothing to change: the file is left as it is */
			r = maildrop_delivery_replace_head(&ds[i], old_len, head.data ? head.data : "",
				head.len);
	}
	strbuf_free(&head);
	return r;
}

void verify_message(const struct verify_envelope *env, struct verify_dkim *dkim,
	struct maildrop_delivery *ds, const size_t *trace_lens, size_t count,
	struct verify_outcome *out)
{
	const struct config *cfg = env->cfg;
	struct authres ar;
	struct strbuf lead;
	struct milter_result mr;
	struct file_head first;
	bool milter_ran = false;

	memset(out, 0, sizeof(*out));
	memset(&ar, 0, sizeof(ar));
	out->action = VERIFY_INBOX;
	if (count == 0)
		return;
	strbuf_init(&lead);
	if (read_head(&ds[0], trace_lens[0], &first) < 0) {
		out->error = errno;
		log_error("verify", "event=rewrite_failed id=%s error=\"%s\"", env->queue_id,
			strerror(out->error));
		file_head_free(&first);
		strbuf_free(&lead);
		return;
	}
	if (cfg->verify_senders) {
		sender_checks(env, dkim, &first, &ar);
		authres_write(&ar, cfg->hostname, "\r\n", &lead);
		if (ar.dmarc.result == AUTH_FAIL && ar.dmarc.disposition == DMARC_POLICY_REJECT) {
			out->action = VERIFY_REJECT;
			out->reason = "dmarc";
			snprintf(out->reply, sizeof(out->reply), "550 5.7.1 DMARC policy of %s rejects "
				"this message (SPF and DKIM not aligned)", ar.dmarc.from_domain);
			log_info("verify", "event=dmarc_rejected client=%s id=%s from_domain=%s",
				env->client_ip, env->queue_id, ar.dmarc.from_domain);
		} else if (ar.dmarc.result == AUTH_FAIL &&
			   ar.dmarc.disposition == DMARC_POLICY_QUARANTINE) {
			out->action = VERIFY_JUNK;
		}
	}
	if (cfg->milter && out->action != VERIFY_REJECT) {
		run_milter(env, &lead, &ds[0], &mr);
		milter_ran = true;
		milter_policy(env, &mr, out);
	}
	if (cfg->verify_senders)
		log_verified(env, &ar, out->action);
	if (out->action == VERIFY_INBOX || out->action == VERIFY_JUNK) {
		if (rewrite_heads(env, &lead, milter_ran ? &mr : NULL, ds, trace_lens, count,
			&first) < 0) {
			out->error = errno;
			log_error("verify", "event=rewrite_failed id=%s error=\"%s\"", env->queue_id,
				strerror(out->error));
		}
		for (size_t i = 0; i < count && out->action == VERIFY_JUNK; i++)
			ds[i].folder = MAILDROP_JUNK_FOLDER;
	}
	if (milter_ran)
		milter_result_free(&mr);
	file_head_free(&first);
	strbuf_free(&lead);
}
