/* mail/trace.h: the trace headers (RFC 5321 4.4): Received for every hop, and Return-Path and
 * Delivered-To for final delivery into a maildrop (received mail, the owner's own mail to a
 * local domain, DSNs). Every such field we write comes from here. Pure: the time is passed
 * in. */
#ifndef MAILPOPBOX_MAIL_TRACE_H
#define MAILPOPBOX_MAIL_TRACE_H

#include <time.h>

#include "config.h"
#include "smtp/session.h"
#include "strbuf.h"

/* Appends the trace headers for delivery of the session's transaction into server's maildrop:
 * one Delivered-To per recipient of that server, and "for <rcpt>" in Received when there is
 * exactly one (naming several would disclose Bcc recipients to each other). */
void mail_trace_headers(struct strbuf *out, const struct smtp_session *s,
	const struct server_config *server, const char *hostname, time_t now);
/* Appends only the Received field (for mail we pass on: the final MTA adds the others).
 * for_rcpt, when not NULL, is named in the "for" clause. */
void mail_trace_received(struct strbuf *out, const struct smtp_session *s,
	const char *hostname, const char *for_rcpt, time_t now);
/* Appends "Return-Path: <sender>" (sender "" for the null reverse-path, RFC 5321 4.4). */
void mail_trace_return_path(struct strbuf *out, const char *sender);
/* Appends "Delivered-To: address": the recipient this copy was delivered for. */
void mail_trace_delivered_to(struct strbuf *out, const char *address);

#endif
