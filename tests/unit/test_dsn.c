/* test_dsn.c: delivery status notifications, composed and then parsed back with a small MIME
 * reader: the RFC 6522 multipart/report structure, the RFC 3464 delivery-status fields per
 * message and per recipient, what is returned of the original (RFC 3461 RET), failure, delay
 * and success variants, and that nothing a remote server says can break the format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/dsn.h"

/* 2023-11-14 22:13:20 UTC and friends. */
#define T_ARRIVAL ((time_t)1700000000)
#define T_ATTEMPT ((time_t)1700003600)
#define T_REPORT ((time_t)1700003700)
#define T_UNTIL ((time_t)1700432000)

static const char original_message[] =
	"Received: from client.example.org\r\n"
	"\tby mx.example.org; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	"From: Owner <owner@example.org>\r\n"
	"To: bob@example.net\r\n"
	"Subject: lunch?\r\n"
	"\r\n"
	"Are you free on Friday?\r\n";

/* ---- a small MIME reader ---- */

struct span {
	const char *p;
	size_t len;
};

struct part {
	struct span headers; /* header section without the empty line */
	struct span body;
};

struct parsed {
	struct span headers;
	struct span body;
	char *boundary;
	struct part parts[8];
	size_t part_count;
	bool closed; /* the close delimiter was found */
};

/* Splits at the first empty line; a section starting with CRLF has no headers. */
static void split_header_body(const char *p, size_t len, struct span *headers, struct span *body)
{
	const char *sep;

	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		*headers = (struct span){p, 0};
		*body = (struct span){p + 2, len - 2};
		return;
	}
	sep = memmem(p, len, "\r\n\r\n", 4);
	if (!sep) {
		*headers = (struct span){p, len};
		*body = (struct span){p + len, 0};
		return;
	}
	*headers = (struct span){p, (size_t)(sep - p) + 2};
	*body = (struct span){sep + 4, len - (size_t)(sep - p) - 4};
}

/* The unfolded value of the n-th field called name (RFC 5322 2.2.3), leading blanks removed,
 * or NULL. Caller frees. */
static char *field_nth(struct span h, const char *name, size_t n)
{
	size_t name_len = strlen(name), i = 0, seen = 0;

	while (i < h.len) {
		const char *line = h.p + i;
		const char *eol = memmem(line, h.len - i, "\r\n", 2);
		size_t line_len = eol ? (size_t)(eol - line) : h.len - i;

		if (line_len > name_len && strncasecmp(line, name, name_len) == 0 &&
			line[name_len] == ':' && seen++ == n) {
			char *value = malloc(h.len + 1);
			size_t o = 0, k = name_len + 1;

			assert_non_null(value);
			for (;;) {
				for (; k < line_len; k++)
					value[o++] = line[k];
				i += line_len + 2;
				if (i >= h.len || (h.p[i] != ' ' && h.p[i] != '\t'))
					break;
				line = h.p + i;
				eol = memmem(line, h.len - i, "\r\n", 2);
				line_len = eol ? (size_t)(eol - line) : h.len - i;
				k = 0;
			}
			value[o] = '\0';
			o = strspn(value, " \t");
			memmove(value, value + o, strlen(value + o) + 1);
			return value;
		}
		i += line_len + 2;
	}
	return NULL;
}

static char *field(struct span h, const char *name)
{
	return field_nth(h, name, 0);
}

static size_t field_count(struct span h, const char *name)
{
	size_t n = 0;
	char *v;

	while ((v = field_nth(h, name, n)) != NULL) {
		free(v);
		n++;
	}
	return n;
}

static void assert_field(struct span h, const char *name, const char *expected)
{
	char *v = field(h, name);

	if (!v)
		fail_msg("field %s missing", name);
	if (strcmp(v, expected) != 0)
		fail_msg("field %s is \"%s\", expected \"%s\"", name, v, expected);
	free(v);
}

static void assert_no_field(struct span h, const char *name)
{
	char *v = field(h, name);

	if (v)
		fail_msg("field %s should be absent, is \"%s\"", name, v);
}

/* boundary="..." from a Content-Type value. */
static char *boundary_of(const char *content_type)
{
	const char *b = strstr(content_type, "boundary=\"");
	const char *end;

	assert_non_null(b);
	b += strlen("boundary=\"");
	end = strchr(b, '"');
	assert_non_null(end);
	return strndup(b, (size_t)(end - b));
}

/* RFC 2046 5.1.1: parts between "--B" lines; the CRLF before a delimiter belongs to it. */
static void parse_message(const char *msg, size_t len, struct parsed *out)
{
	char *ct;
	size_t i, blen, part_start = 0;
	bool in_part = false;

	memset(out, 0, sizeof(*out));
	split_header_body(msg, len, &out->headers, &out->body);
	ct = field(out->headers, "Content-Type");
	assert_non_null(ct);
	out->boundary = boundary_of(ct);
	free(ct);
	blen = strlen(out->boundary);
	i = 0;
	while (i < out->body.len) {
		const char *line = out->body.p + i;
		const char *eol = memmem(line, out->body.len - i, "\r\n", 2);
		size_t line_len = eol ? (size_t)(eol - line) : out->body.len - i;
		bool delim = line_len >= blen + 2 && line[0] == '-' && line[1] == '-' &&
			memcmp(line + 2, out->boundary, blen) == 0;
		bool close = delim && line_len == blen + 4 && memcmp(line + 2 + blen, "--", 2) == 0;

		if (delim && !close && line_len != blen + 2)
			delim = false;
		if (delim) {
			if (in_part) {
				struct part *pt = &out->parts[out->part_count++];
				size_t end = i >= 2 ? i - 2 : i;

				assert_true(out->part_count < 8);
				split_header_body(out->body.p + part_start, end - part_start, &pt->headers,
					&pt->body);
			}
			if (close) {
				out->closed = true;
				break;
			}
			in_part = true;
			part_start = i + line_len + 2;
		}
		i += line_len + 2;
	}
}

static void parsed_free(struct parsed *p)
{
	free(p->boundary);
}

/* The message/delivery-status body as blocks: [0] per-message, then one per recipient. */
static size_t status_blocks(struct span body, struct span *blocks, size_t max)
{
	size_t n = 0, i = 0;

	while (i < body.len && n < max) {
		const char *sep = memmem(body.p + i, body.len - i, "\r\n\r\n", 4);
		size_t end = sep ? (size_t)(sep - body.p) + 2 : body.len;

		blocks[n++] = (struct span){body.p + i, end - i};
		i = sep ? end + 2 : body.len;
	}
	return n;
}

/* Every line ends in CRLF, no bare CR or LF, and none is longer than max octets. */
static void assert_lines_crlf(const char *p, size_t len, size_t max)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r') {
			assert_true(i + 1 < len && p[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_true(p[i] != '\n');
		col++;
		if (col > max)
			fail_msg("line longer than %zu at offset %zu", max, i);
	}
	assert_int_equal(col, 0);
}

static bool span_contains(struct span s, const char *needle)
{
	return memmem(s.p, s.len, needle, strlen(needle)) != NULL;
}

/* Whether the wrapped text part says needle: line breaks and indents read as one space. */
static bool text_says(struct span s, const char *needle)
{
	char *flat = malloc(s.len + 1);
	size_t o = 0;
	bool found;

	assert_non_null(flat);
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == ' ') {
			if (o > 0 && flat[o - 1] != ' ')
				flat[o++] = ' ';
			continue;
		}
		flat[o++] = s.p[i];
	}
	flat[o] = '\0';
	found = strstr(flat, needle) != NULL;
	free(flat);
	return found;
}

/* ---- fixtures ---- */

static struct dsn_report failure_report(const struct dsn_recipient *rcpts, size_t n)
{
	struct dsn_report r = {
		.reporting_mta = "mx.example.org",
		.token = "0123456789ABCDE.dsn.1a2b3c4d",
		.queue_id = "0123456789ABCDE",
		.sender = "owner@example.org",
		.date = T_REPORT,
		.arrival_date = T_ARRIVAL,
		.returned = DSN_RETURN_HEADERS,
		.original_headers = original_message,
		.original_headers_len = sizeof(original_message) - 1,
		.recipients = rcpts,
		.recipient_count = n,
	};

	return r;
}

static const struct dsn_recipient bob_unknown = {
	.address = "bob@example.net",
	.action = DSN_ACTION_FAILED,
	.status = "5.1.1",
	.diagnostic = "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected",
	.remote_mta = "mx.example.net",
	.last_attempt = T_ATTEMPT,
};

/* A report composed in headers mode (compose + end) and parsed back. */
struct composed {
	char *msg;
	struct parsed p;
	struct span blocks[8]; /* delivery-status: [0] per message, then one per recipient */
	size_t block_count;
};

static void compose(const struct dsn_report *r, struct composed *c)
{
	struct strbuf out;
	char boundary[DSN_BOUNDARY_MAX + 1];

	strbuf_init(&out);
	assert_int_equal(dsn_compose(r, &out, boundary), 0);
	dsn_compose_end(boundary, &out);
	assert_lines_crlf(out.data, out.len, 998);
	c->msg = out.data;
	parse_message(out.data, out.len, &c->p);
	assert_string_equal(c->p.boundary, boundary);
	assert_true(c->p.closed);
	assert_int_equal(c->p.part_count, 3);
	c->block_count = status_blocks(c->p.parts[1].body, c->blocks, 8);
}

static void composed_free(struct composed *c)
{
	parsed_free(&c->p);
	free(c->msg);
}

/* ---- tests ---- */

static void test_failure_report_is_a_multipart_report_with_three_parts(void **state)
{
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;
	char *ct;

	(void)state;
	compose(&r, &c);
	assert_field(c.p.headers, "From", "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
	assert_field(c.p.headers, "To", "<owner@example.org>");
	assert_field(c.p.headers, "Subject", "Undelivered Mail Returned to Sender");
	assert_field(c.p.headers, "Date", "Tue, 14 Nov 2023 23:15:00 +0000");
	assert_field(c.p.headers, "Message-ID", "<0123456789ABCDE.dsn.1a2b3c4d@mx.example.org>");
	assert_field(c.p.headers, "MIME-Version", "1.0");
	assert_field(c.p.headers, "Auto-Submitted", "auto-replied");
	ct = field(c.p.headers, "Content-Type");
	assert_non_null(strstr(ct, "multipart/report;"));
	assert_non_null(strstr(ct, "report-type=delivery-status;"));
	free(ct);
	assert_string_equal(c.p.boundary, "mailpopbox-dsn-0123456789ABCDE.dsn.1a2b3c4d");
	/* Plain ASCII throughout: no 8bit marking. */
	assert_no_field(c.p.headers, "Content-Transfer-Encoding");

	assert_field(c.p.parts[0].headers, "Content-Type", "text/plain; charset=us-ascii");
	assert_field(c.p.parts[1].headers, "Content-Type", "message/delivery-status");
	assert_field(c.p.parts[2].headers, "Content-Type", "text/rfc822-headers");
	/* The human part says who and why. */
	assert_true(text_says(c.p.parts[0].body, "<bob@example.net>: delivery failed"));
	assert_true(text_says(c.p.parts[0].body, "The server mx.example.net said: 550 5.1.1"));
	assert_true(text_says(c.p.parts[0].body, "queue id 0123456789ABCDE"));
	/* The boundary appears only as delimiters. */
	{
		size_t count = 0;
		const char *s = c.msg;

		while ((s = strstr(s, c.p.boundary)) != NULL) {
			count++;
			s++;
		}
		/* Content-Type parameter + 3 delimiters + the close delimiter. */
		assert_int_equal(count, 5);
	}
	composed_free(&c);
}

static void test_delivery_status_has_per_message_and_per_recipient_fields(void **state)
{
	struct dsn_recipient rcpts[2] = {bob_unknown, bob_unknown};
	struct dsn_report r;
	struct composed c;

	(void)state;
	rcpts[1].address = "carol@example.com";
	rcpts[1].status = "5.7.1";
	rcpts[1].diagnostic = "smtp; 554 5.7.1 Relay access denied";
	rcpts[1].remote_mta = "mail.example.com";
	rcpts[1].last_attempt = 0;
	r = failure_report(rcpts, 2);
	compose(&r, &c);
	assert_int_equal(c.block_count, 3);

	/* RFC 3464 2.2 */
	assert_field(c.blocks[0], "Reporting-MTA", "dns; mx.example.org");
	assert_field(c.blocks[0], "Arrival-Date", "Tue, 14 Nov 2023 22:13:20 +0000");
	assert_no_field(c.blocks[0], "Original-Envelope-Id");
	assert_no_field(c.blocks[0], "Final-Recipient");

	/* RFC 3464 2.3 */
	assert_field(c.blocks[1], "Final-Recipient", "rfc822; bob@example.net");
	assert_field(c.blocks[1], "Action", "failed");
	assert_field(c.blocks[1], "Status", "5.1.1");
	assert_field(c.blocks[1], "Remote-MTA", "dns; mx.example.net");
	assert_field(c.blocks[1], "Diagnostic-Code",
		"smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected");
	assert_field(c.blocks[1], "Last-Attempt-Date", "Tue, 14 Nov 2023 23:13:20 +0000");
	assert_no_field(c.blocks[1], "Original-Recipient");
	assert_no_field(c.blocks[1], "Will-Retry-Until");

	assert_field(c.blocks[2], "Final-Recipient", "rfc822; carol@example.com");
	assert_field(c.blocks[2], "Status", "5.7.1");
	assert_field(c.blocks[2], "Diagnostic-Code", "smtp; 554 5.7.1 Relay access denied");
	assert_field(c.blocks[2], "Remote-MTA", "dns; mail.example.com");
	assert_no_field(c.blocks[2], "Last-Attempt-Date");
	/* Each field once per block. */
	assert_int_equal(field_count(c.blocks[1], "Action"), 1);
	assert_int_equal(field_count(c.blocks[2], "Action"), 1);
	composed_free(&c);
}

static void test_original_recipient_only_with_orcpt(void **state)
{
	struct dsn_recipient rcpts[2] = {bob_unknown, bob_unknown};
	struct dsn_report r;
	struct composed c;

	(void)state;
	rcpts[0].original = "rfc822;Bob@Example.NET";
	r = failure_report(rcpts, 2);
	compose(&r, &c);
	assert_int_equal(c.block_count, 3);
	assert_field(c.blocks[1], "Original-Recipient", "rfc822;Bob@Example.NET");
	assert_no_field(c.blocks[2], "Original-Recipient");
	composed_free(&c);
}

static void test_original_envelope_id_only_with_envid(void **state)
{
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;

	(void)state;
	r.envid = "QQ314159";
	compose(&r, &c);
	assert_int_equal(c.block_count, 2);
	assert_field(c.blocks[0], "Original-Envelope-Id", "QQ314159");
	/* RFC 3464 2.2: the envelope id comes before Reporting-MTA. */
	assert_true(strstr(c.blocks[0].p, "Original-Envelope-Id") < strstr(c.blocks[0].p,
		"Reporting-MTA"));
	composed_free(&c);
}

static void test_headers_only_returns_the_header_section(void **state)
{
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;
	size_t header_len = strstr(original_message, "\r\n\r\n") - original_message + 2;

	(void)state;
	compose(&r, &c);
	assert_field(c.p.parts[2].headers, "Content-Description", "Undelivered Message Headers");
	assert_int_equal(c.p.parts[2].body.len, header_len);
	assert_memory_equal(c.p.parts[2].body.p, original_message, header_len);
	assert_null(strstr(c.msg, "Are you free"));
	composed_free(&c);
}

static void test_headers_with_bare_newlines_are_returned_with_crlf(void **state)
{
	static const char lf_message[] = "From: a@example.org\nSubject: x\r\n\nbody\n";
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;

	(void)state;
	r.original_headers = lf_message;
	r.original_headers_len = sizeof(lf_message) - 1;
	compose(&r, &c);
	assert_int_equal(c.p.parts[2].body.len, strlen("From: a@example.org\r\nSubject: x\r\n"));
	assert_memory_equal(c.p.parts[2].body.p, "From: a@example.org\r\nSubject: x\r\n",
		c.p.parts[2].body.len);
	composed_free(&c);
}

static void test_full_return_lets_the_caller_append_the_message(void **state)
{
	struct dsn_report r = failure_report(&bob_unknown, 1);
	char boundary[DSN_BOUNDARY_MAX + 1];
	struct strbuf out;
	struct parsed p;

	(void)state;
	r.returned = DSN_RETURN_FULL;
	strbuf_init(&out);
	assert_int_equal(dsn_compose(&r, &out, boundary), 0);
	/* Nothing of the original yet: the caller streams it from msg/ID. */
	assert_null(strstr(out.data, "lunch?"));
	assert_true(out.len >= 4 && memcmp(out.data + out.len - 4, "\r\n\r\n", 4) == 0);
	strbuf_append_str(&out, original_message);
	dsn_compose_end(boundary, &out);
	assert_lines_crlf(out.data, out.len, 998);
	parse_message(out.data, out.len, &p);
	assert_int_equal(p.part_count, 3);
	assert_true(p.closed);
	assert_field(p.parts[2].headers, "Content-Type", "message/rfc822");
	assert_field(p.parts[2].headers, "Content-Description", "Undelivered Message");
	/* The message comes back octet for octet, its final CRLF included. */
	assert_int_equal(p.parts[2].body.len, strlen(original_message));
	assert_memory_equal(p.parts[2].body.p, original_message, strlen(original_message));
	parsed_free(&p);
	strbuf_free(&out);
}

static void test_delayed_report_says_until_when(void **state)
{
	struct dsn_recipient late = {
		.address = "bob@example.net",
		.action = DSN_ACTION_DELAYED,
		.status = "4.4.1",
		.diagnostic = "X-mailpopbox; connection refused by mx.example.net",
		.last_attempt = T_ATTEMPT,
		.will_retry_until = T_UNTIL,
	};
	struct dsn_report r = failure_report(&late, 1);
	struct composed c;

	(void)state;
	r.returned = dsn_return_for(false, &late, 1);
	assert_int_equal(r.returned, DSN_RETURN_HEADERS);
	compose(&r, &c);
	assert_field(c.p.headers, "Subject", "Delayed Mail (still being retried)");
	assert_field(c.p.parts[2].headers, "Content-Type", "text/rfc822-headers");
	assert_int_equal(c.block_count, 2);
	assert_field(c.blocks[1], "Action", "delayed");
	assert_field(c.blocks[1], "Status", "4.4.1");
	assert_field(c.blocks[1], "Will-Retry-Until", "Sun, 19 Nov 2023 22:13:20 +0000");
	assert_field(c.blocks[1], "Diagnostic-Code",
		"X-mailpopbox; connection refused by mx.example.net");
	assert_no_field(c.blocks[1], "Remote-MTA");
	assert_true(text_says(c.p.parts[0].body, "still trying until Sun, 19 Nov 2023"));
	assert_true(text_says(c.p.parts[0].body, "no need to send the message again"));
	composed_free(&c);
}

static void test_success_report_for_delivered_and_relayed(void **state)
{
	struct dsn_recipient ok[2] = {
		{.address = "bob@example.net", .action = DSN_ACTION_DELIVERED, .status = "2.0.0",
			.remote_mta = "mx.example.net",
			.diagnostic = "smtp; 250 2.0.0 Ok: queued as 4SXy"},
		{.address = "carol@example.com", .action = DSN_ACTION_RELAYED,
			.remote_mta = "old.example.com"},
	};
	struct dsn_report r = failure_report(ok, 2);
	struct composed c;

	(void)state;
	r.returned = dsn_return_for(false, ok, 2);
	compose(&r, &c);
	assert_field(c.p.headers, "Subject", "Successful Mail Delivery Report");
	assert_field(c.p.parts[2].headers, "Content-Description", "Message Headers");
	assert_int_equal(c.block_count, 3);
	assert_field(c.blocks[1], "Action", "delivered");
	assert_field(c.blocks[1], "Status", "2.0.0");
	assert_field(c.blocks[2], "Action", "relayed");
	/* No status given: the action's class. */
	assert_field(c.blocks[2], "Status", "2.0.0");
	assert_no_field(c.blocks[2], "Will-Retry-Until");
	assert_true(text_says(c.p.parts[0].body, "<bob@example.net>: delivered to"));
	assert_true(text_says(c.p.parts[0].body, "<carol@example.com>: relayed to"));
	composed_free(&c);
}

static void test_mixed_report_is_titled_by_the_failure(void **state)
{
	struct dsn_recipient mixed[2] = {
		{.address = "late@example.net", .action = DSN_ACTION_DELAYED},
		bob_unknown,
	};
	struct dsn_report r = failure_report(mixed, 2);
	struct composed c;

	(void)state;
	assert_int_equal(dsn_return_for(false, mixed, 2), DSN_RETURN_FULL);
	assert_int_equal(dsn_return_for(true, mixed, 2), DSN_RETURN_HEADERS);
	compose(&r, &c);
	assert_field(c.p.headers, "Subject", "Undelivered Mail Returned to Sender");
	composed_free(&c);
}

static void test_diagnostic_from_a_remote_cannot_inject_lines(void **state)
{
	struct dsn_recipient evil = bob_unknown;
	struct dsn_report r;
	struct composed c;

	(void)state;
	evil.diagnostic = "smtp; 550 5.1.1 bad\r\nX-Injected: yes\r\n\r\n--mailpopbox-dsn-"
			  "0123456789ABCDE.dsn.1a2b3c4d--\r\n\x01\x1b[31m\tcaf\xc3\xa9 \x7f end";
	evil.remote_mta = "mx.example.net\r\nX-Injected: host";
	r = failure_report(&evil, 1);
	compose(&r, &c);
	assert_null(strstr(c.msg, "\r\nX-Injected"));
	assert_null(strstr(c.msg, "\x1b"));
	assert_null(strstr(c.msg, "\xc3"));
	/* Still three parts, and the boundary moved away from the text the remote sent. */
	assert_string_not_equal(c.p.boundary, "mailpopbox-dsn-0123456789ABCDE.dsn.1a2b3c4d");
	assert_int_equal(c.block_count, 2);
	assert_field(c.blocks[1], "Diagnostic-Code",
		"smtp; 550 5.1.1 bad X-Injected: yes --mailpopbox-dsn-0123456789ABCDE.dsn.1a2b3c4d-- "
		"[31m caf?? end");
	assert_field(c.blocks[1], "Remote-MTA", "dns; mx.example.net X-Injected: host");
	composed_free(&c);
}

static void test_long_diagnostic_is_folded_and_capped(void **state)
{
	struct dsn_recipient chatty = bob_unknown;
	struct dsn_report r;
	struct composed c;
	char *long_text, *value;
	size_t n = 4000;

	(void)state;
	long_text = malloc(n + 1);
	assert_non_null(long_text);
	memcpy(long_text, "smtp; 550 ", 10);
	for (size_t i = 10; i < n; i++)
		long_text[i] = i % 7 == 0 ? ' ' : 'a' + (char)(i % 26);
	long_text[n] = '\0';
	chatty.diagnostic = long_text;
	r = failure_report(&chatty, 1);
	compose(&r, &c);
	/* RFC 5322 2.1.1: our fields keep to 78 characters per line. */
	assert_lines_crlf(c.p.parts[1].body.p, c.p.parts[1].body.len, 78);
	assert_lines_crlf(c.p.parts[0].body.p, c.p.parts[0].body.len, 78);
	assert_int_equal(c.block_count, 2);
	value = field(c.blocks[1], "Diagnostic-Code");
	assert_non_null(value);
	assert_true(strlen(value) <= DSN_DIAGNOSTIC_MAX + 3);
	assert_true(strncmp(value, "smtp; 550 ", 10) == 0);
	assert_true(strcmp(value + strlen(value) - 3, "...") == 0);
	free(value);
	composed_free(&c);
	free(long_text);
}

static void test_other_diagnostics_get_a_private_type(void **state)
{
	struct dsn_recipient rcpts[3] = {bob_unknown, bob_unknown, bob_unknown};
	struct dsn_report r;
	struct composed c;

	(void)state;
	rcpts[0].diagnostic = "dns; NXDOMAIN";
	rcpts[1].diagnostic = "no reply from any MX host";
	rcpts[2].diagnostic = "SMTP;550 nope";
	rcpts[0].remote_mta = rcpts[1].remote_mta = NULL;
	r = failure_report(rcpts, 3);
	compose(&r, &c);
	assert_int_equal(c.block_count, 4);
	/* RFC 3464 2.3.6: "smtp" is for SMTP replies; the rest is ours to type. */
	assert_field(c.blocks[1], "Diagnostic-Code", "X-mailpopbox; dns; NXDOMAIN");
	assert_field(c.blocks[2], "Diagnostic-Code", "X-mailpopbox; no reply from any MX host");
	assert_field(c.blocks[3], "Diagnostic-Code", "SMTP; 550 nope");
	assert_true(text_says(c.p.parts[0].body, "Reason: dns; NXDOMAIN"));
	composed_free(&c);
}

static void test_missing_or_malformed_status_follows_the_action(void **state)
{
	struct dsn_recipient rcpts[3] = {bob_unknown, bob_unknown, bob_unknown};
	struct dsn_report r;
	struct composed c;

	(void)state;
	rcpts[0].status = NULL;
	rcpts[1].status = "5.1.1\r\nX: y";
	rcpts[2].status = "7.0.0";
	rcpts[2].action = DSN_ACTION_DELAYED;
	r = failure_report(rcpts, 3);
	compose(&r, &c);
	assert_int_equal(c.block_count, 4);
	assert_field(c.blocks[1], "Status", "5.0.0");
	assert_field(c.blocks[2], "Status", "5.0.0");
	assert_field(c.blocks[3], "Status", "4.0.0");
	composed_free(&c);
}

static void test_boundary_changes_when_the_headers_contain_it(void **state)
{
	static const char tricky[] = "Subject: --mailpopbox-dsn-T1\r\nX-Also: mailpopbox-dsn-T1.1\r\n"
				     "\r\n";
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;

	(void)state;
	r.token = "T1";
	r.original_headers = tricky;
	r.original_headers_len = sizeof(tricky) - 1;
	compose(&r, &c);
	assert_string_equal(c.p.boundary, "mailpopbox-dsn-T1.2");
	assert_true(span_contains(c.p.parts[2].body, "X-Also: mailpopbox-dsn-T1.1"));
	composed_free(&c);
}

static void test_caller_boundary_is_used(void **state)
{
	struct dsn_report r = failure_report(&bob_unknown, 1);
	struct composed c;

	(void)state;
	r.boundary = "=_4f1c9a0e7b2d";
	compose(&r, &c);
	assert_string_equal(c.p.boundary, "=_4f1c9a0e7b2d");
	composed_free(&c);
}

static void test_utf8_addresses_make_the_parts_8bit(void **state)
{
	struct dsn_recipient rcpt = bob_unknown;
	struct dsn_report r;
	struct composed c;

	(void)state;
	rcpt.address = "j\xc3\xbcrgen@example.de";
	r = failure_report(&rcpt, 1);
	compose(&r, &c);
	assert_field(c.p.headers, "Content-Transfer-Encoding", "8bit");
	assert_field(c.p.parts[0].headers, "Content-Type", "text/plain; charset=utf-8");
	assert_field(c.p.parts[0].headers, "Content-Transfer-Encoding", "8bit");
	assert_field(c.p.parts[1].headers, "Content-Transfer-Encoding", "8bit");
	assert_no_field(c.p.parts[2].headers, "Content-Transfer-Encoding");
	composed_free(&c);
}

static void test_unusable_reports_are_refused_and_out_untouched(void **state)
{
	struct dsn_report good = failure_report(&bob_unknown, 1), r;
	struct dsn_recipient no_address = bob_unknown;
	char boundary[DSN_BOUNDARY_MAX + 1];
	struct strbuf out;

	(void)state;
	no_address.address = NULL;
	strbuf_init(&out);
	strbuf_append_str(&out, "before");
	/* No bounce for a bounce: the null sender is never told. */
	r = good;
	r.sender = "";
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.recipient_count = 0;
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.token = "bad token";
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.token = "";
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.boundary = "has\"quote";
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.reporting_mta = NULL;
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	r = good;
	r.recipients = &no_address;
	assert_int_equal(dsn_compose(&r, &out, boundary), -1);
	assert_string_equal(out.data, "before");
	strbuf_free(&out);
}

#define T(name) cmocka_unit_test(name)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_failure_report_is_a_multipart_report_with_three_parts),
		T(test_delivery_status_has_per_message_and_per_recipient_fields),
		T(test_original_recipient_only_with_orcpt),
		T(test_original_envelope_id_only_with_envid),
		T(test_headers_only_returns_the_header_section),
		T(test_headers_with_bare_newlines_are_returned_with_crlf),
		T(test_full_return_lets_the_caller_append_the_message),
		T(test_delayed_report_says_until_when),
		T(test_success_report_for_delivered_and_relayed),
		T(test_mixed_report_is_titled_by_the_failure),
		T(test_diagnostic_from_a_remote_cannot_inject_lines),
		T(test_long_diagnostic_is_folded_and_capped),
		T(test_other_diagnostics_get_a_private_type),
		T(test_missing_or_malformed_status_follows_the_action),
		T(test_boundary_changes_when_the_headers_contain_it),
		T(test_caller_boundary_is_used),
		T(test_utf8_addresses_make_the_parts_8bit),
		T(test_unusable_reports_are_refused_and_out_untouched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
