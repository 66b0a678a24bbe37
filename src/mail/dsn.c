/* mail/dsn.c: delivery status notifications as RFC 3464 reports in an RFC 6522
 * multipart/report: the headers, a text/plain explanation, the message/delivery-status part and
 * the start of the returned message. Pure: no clock, no randomness, no files. */
#include "mail/dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mail/date.h"

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters; fields are folded to that. */
#define FIELD_WIDTH 78
/* The human-readable part is wrapped a little narrower, for quoting in replies. */
#define TEXT_WIDTH 72
/* Addresses (RFC 5321 4.5.3.1.3 allows 256 octets with brackets), host names (255) and the
 * ENVID (RFC 3461 4.4: 100 characters) are all shorter than this after sanitizing. */
#define VALUE_MAX 300
/* A private diagnostic-type (RFC 3464 2.3.6 allows "X-" types) for reasons that are not an
 * SMTP reply: DNS answers, connection errors, expiry. */
#define OWN_DIAGNOSTIC_TYPE "X-mailpopbox"
#define BOUNDARY_PREFIX "mailpopbox-dsn-"
/* Variants of the boundary tried when the content happens to contain it. */
#define BOUNDARY_ATTEMPTS 1000

static const char *const action_names[] = {
	[DSN_ACTION_FAILED] = "failed",
	[DSN_ACTION_DELAYED] = "delayed",
	[DSN_ACTION_DELIVERED] = "delivered",
	[DSN_ACTION_RELAYED] = "relayed",
	[DSN_ACTION_EXPANDED] = "expanded",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *dsn_action_name(enum dsn_action action)
{
	if ((size_t)action < ARRAY_SIZE(action_names))
		return action_names[action];
	return "failed";
}

enum dsn_return dsn_return_for(bool ret_hdrs, const struct dsn_recipient *recipients,
	size_t count)
{
	if (ret_hdrs)
		return DSN_RETURN_HEADERS;
	for (size_t i = 0; i < count; i++)
		if (recipients[i].action == DSN_ACTION_FAILED)
			return DSN_RETURN_FULL;
	return DSN_RETURN_HEADERS;
}

/* What the report is mostly about: it decides the Subject and the opening words. A failure
 * outweighs a delay, which outweighs success. */
enum report_kind { REPORT_SUCCESS, REPORT_DELAY, REPORT_FAILURE };

static enum report_kind report_kind(const struct dsn_report *r)
{
	enum report_kind kind = REPORT_SUCCESS;

	for (size_t i = 0; i < r->recipient_count; i++) {
		if (r->recipients[i].action == DSN_ACTION_FAILED)
			return REPORT_FAILURE;
		if (r->recipients[i].action == DSN_ACTION_DELAYED)
			kind = REPORT_DELAY;
	}
	return kind;
}

/* ---- making text safe to put in a header field ---- */

/* Appends s as one clean line: CR, LF, TAB, other controls and DEL become spaces (a remote
 * reply must not start a new field or a new MIME part), runs of spaces become one, the ends
 * are trimmed, and octets >= 0x80 become '?' when ascii_only. At most max octets are kept
 * ("..." marks the cut). */
static void append_sanitized(struct strbuf *out, const char *s, size_t max, bool ascii_only)
{
	size_t kept = 0;
	bool space = false;

	/* Allocates, so out->data is a string even when nothing is kept. */
	strbuf_append(out, "", 0);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;

		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = kept > 0;
			continue;
		}
		if (kept + (space ? 1 : 0) + 1 > max) {
			strbuf_append_str(out, "...");
			return;
		}
		if (space) {
			strbuf_append(out, " ", 1);
			kept++;
			space = false;
		}
		if (c >= 0x80 && ascii_only)
			c = '?';
		strbuf_append(out, &c, 1);
		kept++;
	}
}

static char *sanitized_copy(const char *s, size_t max, bool ascii_only)
{
	struct strbuf sb;

	strbuf_init(&sb);
	append_sanitized(&sb, s ? s : "", max, ascii_only);
	return sb.data;
}

/* Appends lead and the words of text (one sanitized line), starting a new line (with
 * next_lead) before a word that would pass width, and ends with CRLF. Words are joined by one
 * space; with lead_space a space also comes before the first word of each line. */
static void append_words(struct strbuf *out, const char *lead, const char *next_lead,
	bool lead_space, const char *text, size_t width)
{
	size_t col = strlen(lead);
	bool line_empty = true;
	const char *p = text;

	strbuf_append_str(out, lead);
	while (*p) {
		const char *word = p;
		size_t len;

		while (*p && *p != ' ')
			p++;
		len = (size_t)(p - word);
		if (!line_empty && col + 1 + len > width) {
			strbuf_append_str(out, "\r\n");
			strbuf_append_str(out, next_lead);
			col = strlen(next_lead);
			line_empty = true;
		}
		if (!line_empty || lead_space) {
			strbuf_append(out, " ", 1);
			col++;
		}
		strbuf_append(out, word, len);
		col += len;
		line_empty = false;
		while (*p == ' ')
			p++;
	}
	strbuf_append_str(out, "\r\n");
}

/* Appends "Name: value", folded (RFC 5322 2.2.3: a CRLF may be inserted before any
 * whitespace) so lines stay within FIELD_WIDTH where the words allow it. */
static void append_field(struct strbuf *out, const char *name, const char *value)
{
	struct strbuf lead;

	strbuf_init(&lead);
	strbuf_appendf(&lead, "%s:", name);
	append_words(out, lead.data, "", true, value, FIELD_WIDTH);
	strbuf_free(&lead);
}

/* Appends text wrapped at TEXT_WIDTH; the first line starts with first_indent, the others
 * with indent. */
static void append_wrapped(struct strbuf *out, const char *first_indent, const char *indent,
	const char *text)
{
	append_words(out, first_indent, indent, false, text, TEXT_WIDTH);
}

static char *date_string(time_t t)
{
	struct strbuf sb;

	strbuf_init(&sb);
	mail_date_append(&sb, t);
	return sb.data;
}

/* ---- fields ---- */

static bool is_digits(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* RFC 3463 2: class "." subject "." detail, class 2, 4 or 5, subject and detail 1-3 digits. */
static bool status_valid(const char *s)
{
	const char *dot1, *dot2;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	dot1 = s + 1;
	dot2 = strchr(dot1 + 1, '.');
	if (!dot2)
		return false;
	return is_digits(dot1 + 1, (size_t)(dot2 - dot1 - 1), 3) &&
		is_digits(dot2 + 1, strlen(dot2 + 1), 3);
}

/* RFC 3464 2.3.4: a Status is required; without a usable one the action says the class. */
static const char *recipient_status(const struct dsn_recipient *rc)
{
	if (status_valid(rc->status))
		return rc->status;
	switch (rc->action) {
	case DSN_ACTION_FAILED:
		return "5.0.0";
	case DSN_ACTION_DELAYED:
		return "4.0.0";
	default:
		return "2.0.0";
	}
}

/* Splits a sanitized diagnostic into RFC 3464 2.3.6 diagnostic-type and text. "smtp" (the
 * registered type for SMTP replies) and private "X-" types are kept; anything else, such as
 * "dns; NXDOMAIN" or a bare message, goes whole under our own X- type. *type_len is 0 when
 * our type is used. */
static void split_diagnostic(const char *diag, const char **type, size_t *type_len,
	const char **text)
{
	size_t n = strspn(diag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-");

	if (n > 0 && n <= 32 && diag[n] == ';' &&
		((n == 4 && strncasecmp(diag, "smtp", 4) == 0) ||
			(n > 2 && strncasecmp(diag, "x-", 2) == 0))) {
		*type = diag;
		*type_len = n;
		*text = diag + n + 1;
		while (**text == ' ')
			(*text)++;
		return;
	}
	*type = OWN_DIAGNOSTIC_TYPE;
	*type_len = 0;
	*text = diag;
}

static bool is_smtp_diagnostic(const char *type, size_t type_len)
{
	return type_len == 4 && strncasecmp(type, "smtp", 4) == 0;
}

/* Appends "Name: PREFIX value" with value sanitized; prefix is ours ("dns; "). */
static void append_sanitized_field(struct strbuf *out, const char *name, const char *prefix,
	const char *raw, bool ascii_only)
{
	struct strbuf value;

	strbuf_init(&value);
	strbuf_append_str(&value, prefix);
	append_sanitized(&value, raw, VALUE_MAX, ascii_only);
	append_field(out, name, value.data);
	strbuf_free(&value);
}

static void append_date_field(struct strbuf *out, const char *name, time_t t)
{
	char *date = date_string(t);

	append_field(out, name, date);
	free(date);
}

/* RFC 3464 2.3.6 Diagnostic-Code, when there is anything to say. */
static void append_diagnostic_field(struct strbuf *out, const char *diagnostic)
{
	char *clean = sanitized_copy(diagnostic, DSN_DIAGNOSTIC_MAX, true);
	const char *type, *text;
	size_t type_len;
	struct strbuf value;

	if (clean[0]) {
		split_diagnostic(clean, &type, &type_len, &text);
		strbuf_init(&value);
		strbuf_append(&value, type, type_len ? type_len : strlen(type));
		strbuf_append_str(&value, "; ");
		strbuf_append_str(&value, text);
		append_field(out, "Diagnostic-Code", value.data);
		strbuf_free(&value);
	}
	free(clean);
}

/* One per-recipient block of RFC 3464 2.3, fields in the order of its grammar. */
static void append_recipient_fields(struct strbuf *out, const struct dsn_recipient *rc)
{
	/* RFC 3464 2.3.1: the ORCPT value as given, "address-type ; generic-address". */
	if (rc->original)
		append_sanitized_field(out, "Original-Recipient", "", rc->original, false);
	append_sanitized_field(out, "Final-Recipient", "rfc822; ", rc->address, false);
	append_field(out, "Action", dsn_action_name(rc->action));
	append_field(out, "Status", recipient_status(rc));
	if (rc->remote_mta && rc->remote_mta[0])
		append_sanitized_field(out, "Remote-MTA", "dns; ", rc->remote_mta, true);
	append_diagnostic_field(out, rc->diagnostic);
	if (rc->last_attempt)
		append_date_field(out, "Last-Attempt-Date", rc->last_attempt);
	/* RFC 3464 2.3.9: only meaningful while the MTA is still trying. */
	if (rc->action == DSN_ACTION_DELAYED && rc->will_retry_until)
		append_date_field(out, "Will-Retry-Until", rc->will_retry_until);
}

/* The message/delivery-status body (RFC 3464 2.1): per-message fields, then each recipient's
 * fields after an empty line. */
static void compose_status(const struct dsn_report *r, struct strbuf *out)
{
	/* RFC 3464 2.2.1: Original-Envelope-Id only when the sender gave an ENVID. */
	if (r->envid)
		append_sanitized_field(out, "Original-Envelope-Id", "", r->envid, true);
	append_sanitized_field(out, "Reporting-MTA", "dns; ", r->reporting_mta, true);
	if (r->arrival_date)
		append_date_field(out, "Arrival-Date", r->arrival_date);
	for (size_t i = 0; i < r->recipient_count; i++) {
		strbuf_append_str(out, "\r\n");
		append_recipient_fields(out, &r->recipients[i]);
	}
}

/* ---- the human-readable part ---- */

static void append_paragraph(struct strbuf *out, const char *text)
{
	append_wrapped(out, "", "", text);
	strbuf_append_str(out, "\r\n");
}

static void append_intro(const struct dsn_report *r, enum report_kind kind, struct strbuf *out)
{
	struct strbuf sb;
	char *host = sanitized_copy(r->reporting_mta, VALUE_MAX, true);
	char *arrival = date_string(r->arrival_date);

	strbuf_init(&sb);
	strbuf_appendf(&sb, "This is the mail system at host %s.", host);
	append_paragraph(out, sb.data);
	strbuf_reset(&sb);
	switch (kind) {
	case REPORT_FAILURE:
		strbuf_append_str(&sb, "Your message could not be delivered to one or more "
			"recipients. The mail system has given up on them and will not try again. "
			"The reasons are below.");
		break;
	case REPORT_DELAY:
		strbuf_append_str(&sb, "Your message has not been delivered yet to one or more "
			"recipients. The mail system is still trying and will tell you if it gives "
			"up. There is no need to send the message again.");
		break;
	case REPORT_SUCCESS:
		strbuf_append_str(&sb, "Your message was delivered to the recipients below, as "
			"you asked to be told.");
		break;
	}
	append_paragraph(out, sb.data);
	strbuf_reset(&sb);
	strbuf_appendf(&sb, "The message was accepted on %s", arrival);
	if (r->queue_id) {
		char *id = sanitized_copy(r->queue_id, VALUE_MAX, true);

		strbuf_appendf(&sb, " with queue id %s", id);
		free(id);
	}
	strbuf_append_str(&sb, ". A delivery report for mail programs is attached.");
	append_paragraph(out, sb.data);
	strbuf_free(&sb);
	free(arrival);
	free(host);
}

/* "<address>: what happened (status)" and, indented, what the other side said. */
static void append_recipient_text(const struct dsn_recipient *rc, struct strbuf *out)
{
	struct strbuf sb;
	char *address = sanitized_copy(rc->address, VALUE_MAX, false);
	char *remote = sanitized_copy(rc->remote_mta, VALUE_MAX, true);
	char *diag = sanitized_copy(rc->diagnostic, DSN_DIAGNOSTIC_MAX, true);
	const char *status = recipient_status(rc);

	strbuf_init(&sb);
	strbuf_appendf(&sb, "<%s>: ", address);
	switch (rc->action) {
	case DSN_ACTION_FAILED:
		strbuf_appendf(&sb, "delivery failed (status %s).", status);
		break;
	case DSN_ACTION_DELAYED:
		strbuf_appendf(&sb, "not delivered yet (status %s)", status);
		if (rc->will_retry_until) {
			char *until = date_string(rc->will_retry_until);

			strbuf_appendf(&sb, "; still trying until %s", until);
			free(until);
		}
		strbuf_append_str(&sb, ".");
		break;
	case DSN_ACTION_DELIVERED:
		strbuf_append_str(&sb, "delivered");
		if (remote[0])
			strbuf_appendf(&sb, " to %s", remote);
		strbuf_append_str(&sb, ".");
		break;
	case DSN_ACTION_RELAYED:
		strbuf_append_str(&sb, "relayed");
		if (remote[0])
			strbuf_appendf(&sb, " to %s", remote);
		strbuf_append_str(&sb, ", a server that does not send delivery reports: this "
			"is the last report you will get for this recipient.");
		break;
	case DSN_ACTION_EXPANDED:
		strbuf_append_str(&sb, "delivered to a list or alias, which passes it on.");
		break;
	}
	append_wrapped(out, "", "  ", sb.data);
	strbuf_reset(&sb);
	if (diag[0]) {
		const char *type, *text;
		size_t type_len;

		split_diagnostic(diag, &type, &type_len, &text);
		if (is_smtp_diagnostic(type, type_len) && remote[0])
			strbuf_appendf(&sb, "The server %s said: %s", remote, text);
		else if (is_smtp_diagnostic(type, type_len))
			strbuf_appendf(&sb, "The remote server said: %s", text);
		else
			strbuf_appendf(&sb, "Reason: %s", diag);
		append_wrapped(out, "    ", "    ", sb.data);
	}
	strbuf_free(&sb);
	free(diag);
	free(remote);
	free(address);
}

static void compose_text(const struct dsn_report *r, enum report_kind kind, struct strbuf *out)
{
	append_intro(r, kind, out);
	for (size_t i = 0; i < r->recipient_count; i++) {
		if (i > 0)
			strbuf_append_str(out, "\r\n");
		append_recipient_text(&r->recipients[i], out);
	}
}

/* ---- the returned header section ---- */

/* Appends the header section of data (up to its empty line) with CRLF line ends: NULs and lone
 * CRs become spaces so the part stays text. A last line without its LF is kept only when data
 * is the whole message (shorter than DSN_HEADERS_MAX); otherwise it was cut and is dropped. */
static void compose_headers(const char *data, size_t len, struct strbuf *out)
{
	bool complete = len < DSN_HEADERS_MAX;
	size_t i = 0;

	if (len > DSN_HEADERS_MAX)
		len = DSN_HEADERS_MAX;
	while (i < len) {
		const char *lf = memchr(data + i, '\n', len - i);
		size_t end = lf ? (size_t)(lf - data) : len;
		size_t line_end = end;

		if (!lf && !complete)
			break;
		if (line_end > i && data[line_end - 1] == '\r')
			line_end--;
		/* RFC 5322 2.1: the header section ends at the first empty line. */
		if (line_end == i)
			break;
		for (size_t k = i; k < line_end; k++) {
			char c = data[k];

			if (c == '\0' || c == '\r')
				c = ' ';
			strbuf_append(out, &c, 1);
		}
		strbuf_append_str(out, "\r\n");
		i = end + 1;
	}
}

/* ---- putting it together ---- */

static bool has_8bit(const struct strbuf *sb)
{
	for (size_t i = 0; i < sb->len; i++)
		if ((unsigned char)sb->data[i] >= 0x80)
			return true;
	return false;
}

static bool token_valid(const char *s, size_t max)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	if (len == 0 || len > max)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

/* RFC 2046 5.1.1 bchars, without the space (allowed, but not at the end, and pointless). */
static bool boundary_valid(const char *s)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	return len > 0 && len <= DSN_BOUNDARY_MAX &&
		strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?") ==
		len;
}

static bool contains(const struct strbuf *sb, const char *needle)
{
	return sb->len > 0 && memmem(sb->data, sb->len, needle, strlen(needle)) != NULL;
}

/* The boundary: the caller's or one made from the token, changed (".N") until no part we write
 * contains it (RFC 2046 5.1.1: it must not appear inside the encapsulated content). */
static bool choose_boundary(const struct dsn_report *r, const struct strbuf *parts[], size_t n,
	char boundary[DSN_BOUNDARY_MAX + 1])
{
	char base[DSN_BOUNDARY_MAX + 1];

	if (r->boundary)
		snprintf(base, sizeof(base), "%s", r->boundary);
	else
		snprintf(base, sizeof(base), "%s%s", BOUNDARY_PREFIX, r->token);
	for (int attempt = 0; attempt < BOUNDARY_ATTEMPTS; attempt++) {
		bool clash = false;

		if (attempt == 0) {
			snprintf(boundary, DSN_BOUNDARY_MAX + 1, "%s", base);
		} else {
			char suffix[8];
			int sl = snprintf(suffix, sizeof(suffix), ".%d", attempt);
			size_t keep = strlen(base);

			if (keep + (size_t)sl > DSN_BOUNDARY_MAX)
				keep = DSN_BOUNDARY_MAX - (size_t)sl;
			snprintf(boundary, DSN_BOUNDARY_MAX + 1, "%.*s%s", (int)keep, base, suffix);
		}
		for (size_t i = 0; i < n && !clash; i++)
			clash = contains(parts[i], boundary);
		if (!clash)
			return true;
	}
	return false;
}

static bool report_usable(const struct dsn_report *r)
{
	if (!r->reporting_mta || !r->reporting_mta[0] || !token_valid(r->token, DSN_TOKEN_MAX) ||
		!r->sender || !r->sender[0] || r->recipient_count == 0 || !r->recipients ||
		(r->boundary && !boundary_valid(r->boundary)) ||
		(r->returned != DSN_RETURN_HEADERS && r->returned != DSN_RETURN_FULL))
		return false;
	for (size_t i = 0; i < r->recipient_count; i++)
		if (!r->recipients[i].address ||
			(size_t)r->recipients[i].action >= ARRAY_SIZE(action_names))
			return false;
	return true;
}

static void append_part_header(struct strbuf *out, const char *boundary, const char *description,
	const char *content_type, bool eight_bit)
{
	strbuf_appendf(out, "\r\n--%s\r\n", boundary);
	strbuf_appendf(out, "Content-Description: %s\r\n", description);
	strbuf_appendf(out, "Content-Type: %s\r\n", content_type);
	if (eight_bit)
		strbuf_append_str(out, "Content-Transfer-Encoding: 8bit\r\n");
	strbuf_append_str(out, "\r\n");
}

/* The report's own header section (RFC 5322 3.6 and RFC 6522 3), up to the preamble. */
static void append_report_headers(const struct dsn_report *r, enum report_kind kind,
	const char *boundary, bool eight_bit, struct strbuf *out)
{
	static const char *const subjects[] = {
		[REPORT_SUCCESS] = "Successful Mail Delivery Report",
		[REPORT_DELAY] = "Delayed Mail (still being retried)",
		[REPORT_FAILURE] = "Undelivered Mail Returned to Sender",
	};
	char *host = sanitized_copy(r->reporting_mta, VALUE_MAX, true);
	char *sender = sanitized_copy(r->sender, VALUE_MAX, false);

	strbuf_appendf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	strbuf_appendf(out, "To: <%s>\r\n", sender);
	append_field(out, "Subject", subjects[kind]);
	append_date_field(out, "Date", r->date);
	strbuf_appendf(out, "Message-ID: <%s@%s>\r\n", r->token, host);
	/* RFC 3834 5: marks it as an automatic response, so vacation responders stay quiet. */
	strbuf_append_str(out, "Auto-Submitted: auto-replied\r\n");
	strbuf_append_str(out, "MIME-Version: 1.0\r\n");
	/* RFC 6522 3: multipart/report with report-type delivery-status (RFC 3464 2). */
	strbuf_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"%s\"\r\n", boundary);
	/* RFC 2045 6.4: a multipart's encoding must cover what its parts contain. */
	if (eight_bit)
		strbuf_append_str(out, "Content-Transfer-Encoding: 8bit\r\n");
	strbuf_append_str(out, "\r\nThis is a MIME-encapsulated message.\r\n");
	free(sender);
	free(host);
}

int dsn_compose(const struct dsn_report *r, struct strbuf *out,
	char boundary[DSN_BOUNDARY_MAX + 1])
{
	struct strbuf text, status, headers;
	const struct strbuf *parts[3] = {&text, &status, &headers};
	enum report_kind kind;
	bool text_8bit, status_8bit, returned_8bit, ok;

	if (!report_usable(r))
		return -1;
	kind = report_kind(r);
	strbuf_init(&text);
	strbuf_init(&status);
	strbuf_init(&headers);
	compose_text(r, kind, &text);
	compose_status(r, &status);
	if (r->returned == DSN_RETURN_HEADERS && r->original_headers)
		compose_headers(r->original_headers, r->original_headers_len, &headers);
	ok = choose_boundary(r, parts, 3, boundary);
	if (ok) {
		/* Addresses may be UTF-8 (RFC 6531): such parts are sent as 8bit. */
		text_8bit = has_8bit(&text);
		status_8bit = has_8bit(&status);
		returned_8bit = r->original_8bit || has_8bit(&headers);
		append_report_headers(r, kind, boundary, text_8bit || status_8bit || returned_8bit,
			out);
		append_part_header(out, boundary, "Notification",
			text_8bit ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
			text_8bit);
		strbuf_append(out, text.data, text.len);
		append_part_header(out, boundary, "Delivery report", "message/delivery-status",
			status_8bit);
		strbuf_append(out, status.data, status.len);
		/* RFC 6522 3: the third part is the message or just its header section. */
		if (r->returned == DSN_RETURN_FULL) {
			append_part_header(out, boundary,
				kind == REPORT_FAILURE ? "Undelivered Message" : "Message",
				"message/rfc822", returned_8bit);
		} else {
			append_part_header(out, boundary,
				kind == REPORT_FAILURE ? "Undelivered Message Headers"
						       : "Message Headers",
				"text/rfc822-headers", returned_8bit);
			strbuf_append(out, headers.data, headers.len);
		}
	}
	strbuf_free(&text);
	strbuf_free(&status);
	strbuf_free(&headers);
	return ok ? 0 : -1;
}

void dsn_compose_end(const char *boundary, struct strbuf *out)
{
	/* The CRLF before "--" belongs to the delimiter (RFC 2046 5.1.1), so the returned
	 * content keeps its own final CRLF. */
	strbuf_appendf(out, "\r\n--%s--\r\n", boundary);
}
