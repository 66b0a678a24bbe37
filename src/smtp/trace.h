/* smtp/trace.h: the trace headers prepended to a delivered message (RFC 5321 4.4):
 * Return-Path, Delivered-To and Received. Pure: the time is passed in. */
#ifndef MAILPOPBOX_SMTP_TRACE_H
#define MAILPOPBOX_SMTP_TRACE_H

#include <time.h>

#include "config.h"
#include "smtp/session.h"
#include "strbuf.h"

/* Appends the trace headers for delivery of the session's transaction into server's maildrop:
 * one Delivered-To per recipient of that server, and "for <rcpt>" in Received when there is
 * exactly one (naming several would disclose Bcc recipients to each other). */
void smtp_trace_headers(struct strbuf *out, const struct smtp_session *s,
	const struct server_config *server, const char *hostname, time_t now);
/* Appends only the Received field (for mail we pass on: the final MTA adds the others).
 * for_rcpt, when not NULL, is named in the "for" clause. */
void smtp_trace_received(struct strbuf *out, const struct smtp_session *s,
	const char *hostname, const char *for_rcpt, time_t now);

#endif
