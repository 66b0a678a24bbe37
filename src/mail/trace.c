/* mail/trace.c: Return-Path, Delivered-To and Received headers (RFC 5321 4.4, RFC 3848
 * protocol names, RFC 6531 UTF8SMTP). */
#include "mail/trace.h"

#include <stdio.h>

#include "mail/date.h"

void mail_trace_return_path(struct strbuf *out, const char *sender)
{
	strbuf_appendf(out, "Return-Path: <%s>\r\n", sender);
}

void mail_trace_delivered_to(struct strbuf *out, const char *address)
{
	strbuf_appendf(out, "Delivered-To: %s\r\n", address);
}

/* RFC 3848 (ESMTP, ESMTPS) and RFC 6531 3.7.3 (UTF8SMTP, UTF8SMTPS). */
static const char *protocol_name(const struct smtp_session *s)
{
	const struct smtp_tx *tx = smtp_session_tx(s);
	bool tls = smtp_session_tls_active(s);

	if (!smtp_session_esmtp(s))
		return "SMTP"; /* RFC 3848 names no TLS variant of plain SMTP */
	if (smtp_session_authenticated(s)) {
		/* RFC 3848 ESMTPA/ESMTPSA, RFC 6531 UTF8SMTPA/UTF8SMTPSA */
		if (tx->smtputf8)
			return tls ? "UTF8SMTPSA" : "UTF8SMTPA";
		return tls ? "ESMTPSA" : "ESMTPA";
	}
	if (tx->smtputf8)
		return tls ? "UTF8SMTPS" : "UTF8SMTP";
	return tls ? "ESMTPS" : "ESMTP";
}

/* The client's HELO name is only checked for visible ASCII; in the header keep it to the
 * characters of a domain or address literal so it cannot open a comment or end the clause. */
static void sanitized_helo(const char *helo, char *buf, size_t size)
{
	size_t o = 0;

	for (; *helo && o + 1 < size; helo++) {
		char c = *helo;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':';
		buf[o++] = ok ? c : '_';
	}
	buf[o] = '\0';
}

void mail_trace_received(struct strbuf *out, const struct smtp_session *s,
	const char *hostname, const char *for_rcpt, time_t now)
{
	const struct smtp_tx *tx = smtp_session_tx(s);
	char helo[SMTP_DOMAIN_MAX + 1];
	char date[MAIL_DATE_MAX];

	sanitized_helo(smtp_session_helo(s), helo, sizeof(helo));
	mail_date_format(now, date);
	strbuf_appendf(out, "Received: from %s ([%s])\r\n\tby %s (mailpopbox) with %s",
		helo, smtp_session_client_ip(s), hostname, protocol_name(s));
	if (smtp_session_tls_description(s))
		strbuf_appendf(out, "\r\n\t(%s)", smtp_session_tls_description(s));
	strbuf_appendf(out, "\r\n\tid %s", tx->queue_id);
	if (for_rcpt)
		strbuf_appendf(out, "\r\n\tfor <%s>", for_rcpt);
	strbuf_appendf(out, "; %s\r\n", date);
}

void mail_trace_headers(struct strbuf *out, const struct smtp_session *s,
	const struct server_config *server, const char *hostname, time_t now)
{
	const struct smtp_tx *tx = smtp_session_tx(s);
	const char *only_rcpt = NULL;
	size_t count = 0;

	mail_trace_return_path(out, tx->sender.null_path ? "" : tx->sender.address);
	for (size_t i = 0; i < tx->rcpt_count; i++) {
		if (tx->rcpts[i].server != server)
			continue;
		mail_trace_delivered_to(out, tx->rcpts[i].address);
		only_rcpt = tx->rcpts[i].address;
		count++;
	}
	mail_trace_received(out, s, hostname, count == 1 ? only_rcpt : NULL, now);
}
