/* test_smtp_session.c: the SMTP state machine (smtp/session.c) driven line by line and DATA
 * byte by byte exactly as smtp/server.c drives it; every reply is checked for its code and its
 * RFC 3463 enhanced code. Also the trace headers (mail/trace.c) of an accepted transaction. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "limits.h"
#include "smtp/session.h"
#include "mail/trace.h"
#include "strbuf.h"

/* Two domains, one blocked address, small limits so tests can reach them. */
static const char config_json[] =
	"{\"Hostname\": \"mx.example.org\", \"Servers\": ["
	"{\"Domain\": \"example.org\", \"MailboxPassword\": \"pw\", \"MaildropPath\": \"/tmp/x\", "
	"\"BlockedAddresses\": [\"blocked@example.org\"]}, "
	"{\"Domain\": \"example.net\", \"MailboxPassword\": \"pw2\", \"MaildropPath\": \"/tmp/y\"}], "
	"\"MaxRecipients\": 3, \"MaxMessageSize\": 1000}";

#define MAX_RECIPIENTS 3
#define MAX_MESSAGE_SIZE 1000
#define CLIENT_IP "192.0.2.1"
#define TLS_DESCRIPTION "TLSv1.3 TLS_AES_256_GCM_SHA384"
/* 2023-11-14 22:13:20 UTC: a fixed clock for the Received date. */
#define FIXED_TIME ((time_t)1700000000)
#define FIXED_DATE "Tue, 14 Nov 2023 22:13:20 +0000"

static struct config cfg;

/* One client connection: the session, the replies of the last call, the last action. */
struct client {
	struct smtp_session *s;
	struct strbuf out;
	enum smtp_action action;
	char message[4096]; /* unstuffed DATA bytes, as the glue would write them to the maildrop */
	size_t message_len;
};

static int load_config(void **state)
{
	char err[256] = "";

	(void)state;
	if (config_load_string(config_json, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "test config does not load: %s\n", err);
		return -1;
	}
	return 0;
}

static int free_config(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

static struct client *client_new_on(bool tls_available, bool tls_active, bool submission)
{
	struct smtp_session_params params = {
		.cfg = &cfg,
		.client_ip = CLIENT_IP,
		.tls_available = tls_available,
		.tls_active = tls_active,
		.submission = submission,
	};
	struct client *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->s = smtp_session_new(&params);
	strbuf_init(&c->out);
	smtp_session_greeting(c->s, &c->out);
	return c;
}

static struct client *client_new(bool tls_available, bool tls_active)
{
	return client_new_on(tls_available, tls_active, false);
}

/* The usual client: plain connection on a server that has a certificate. */
static int setup_client(void **state)
{
	*state = client_new(true, false);
	return 0;
}

static int teardown_client(void **state)
{
	struct client *c = *state;

	smtp_session_free(c->s);
	strbuf_free(&c->out);
	free(c);
	return 0;
}

/* Replaces the fixture's client with one for another TLS situation. */
static struct client *replace_client(void **state, bool tls_available, bool tls_active)
{
	teardown_client(state);
	*state = client_new(tls_available, tls_active);
	return *state;
}

static const char *replies(const struct client *c)
{
	return c->out.data ? c->out.data : "";
}

/* Sends one command line (CRLF already stripped, as the glue does) of len octets. */
static void send_n(struct client *c, const char *line, size_t len)
{
	strbuf_reset(&c->out);
	c->action = smtp_session_feed_line(c->s, line, len, &c->out);
}

static void send_line(struct client *c, const char *line)
{
	send_n(c, line, strlen(line));
}

/* True when text is exactly one reply line "<want> <text>\r\n" (want is e.g. "250 2.1.0"). */
static bool is_single_reply(const char *text, const char *want)
{
	size_t n = strlen(want);
	const char *crlf = strstr(text, "\r\n");

	return strncmp(text, want, n) == 0 && text[n] == ' ' && crlf && crlf[2] == '\0';
}

/* Sends line and checks the reply is a single line with that code and enhanced code. */
static void expect_n(struct client *c, const char *line, size_t len, const char *want)
{
	send_n(c, line, len);
	if (!is_single_reply(replies(c), want))
		fail_msg("\"%.*s\" got \"%s\", want \"%s ...\\r\\n\"", (int)len, line, replies(c),
			want);
}

static void expect(struct client *c, const char *line, const char *want)
{
	expect_n(c, line, strlen(line), want);
}

static void ehlo(struct client *c)
{
	send_line(c, "EHLO client.example.com");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
}

/* EHLO and an accepted sender from a remote domain. */
static void begin_mail(struct client *c)
{
	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
}

/* EHLO, an accepted sender and one accepted recipient. */
static void start_transaction(struct client *c, const char *mail_from)
{
	ehlo(c);
	expect(c, mail_from, "250 2.1.0");
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
}

/* After 354, as smtp/server.c does it: raw bytes fed in small chunks (so chunk boundaries fall
 * everywhere) into an output buffer of chunk + 1 octets until the end of data, then
 * smtp_session_data_end. Returns the verdict; the refusal reply, if any, is in out. All of raw
 * must be consumed: callers pass exactly one message. */
static enum smtp_data_verdict feed_message(struct client *c, const char *raw, size_t len)
{
	enum { CHUNK = 7 };
	char chunk_out[CHUNK + 1];
	size_t pos = 0;

	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA);
	smtp_session_set_queue_id(c->s, "1A2B3C4D5E");
	c->message_len = 0;
	while (pos < len && !smtp_session_data_done(c->s)) {
		size_t n = len - pos < CHUNK ? len - pos : CHUNK;
		size_t out_len = 0;
		size_t used = smtp_session_feed_data(c->s, raw + pos, n, chunk_out, &out_len);

		assert_true(used <= n);
		assert_true(out_len <= n + 1);
		assert_true(c->message_len + out_len <= sizeof(c->message));
		memcpy(c->message + c->message_len, chunk_out, out_len);
		c->message_len += out_len;
		pos += used;
	}
	assert_true(smtp_session_data_done(c->s));
	assert_int_equal(pos, len);
	strbuf_reset(&c->out);
	return smtp_session_data_end(c->s, &c->out);
}

/* DATA as the glue runs it: BEGIN_DATA with no reply yet, the storage opens, then the 354. */
static void open_data(struct client *c)
{
	send_line(c, "DATA");
	assert_int_equal(c->action, SMTP_ACTION_BEGIN_DATA);
	assert_string_equal(replies(c), "");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA_OPENING);
	smtp_session_data_ready(c->s, &c->out);
	assert_true(is_single_reply(replies(c), "354"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA);
}

/* DATA, its 354, then the message. */
static enum smtp_data_verdict send_data(struct client *c, const char *raw, size_t len)
{
	open_data(c);
	return feed_message(c, raw, len);
}

static enum smtp_data_verdict send_data_str(struct client *c, const char *raw)
{
	return send_data(c, raw, strlen(raw));
}

static void assert_message(const struct client *c, const char *want)
{
	assert_int_equal(c->message_len, strlen(want));
	assert_memory_equal(c->message, want, c->message_len);
}

/* A message is refused after its final dot with want, and the session is ready again. */
static void expect_data_refused(struct client *c, const char *raw, size_t len, const char *want)
{
	assert_int_equal(send_data(c, raw, len), SMTP_DATA_DISCARD);
	if (!is_single_reply(replies(c), want))
		fail_msg("data end got \"%s\", want \"%s ...\\r\\n\"", replies(c), want);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
}

/* ---- greeting, EHLO, HELO ---- */

static void test_greeting_names_hostname(void **state)
{
	struct client *c = *state;

	assert_string_equal(replies(c), "220 mx.example.org ESMTP mailpopbox\r\n");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
}

static void test_ehlo_advertises_extensions(void **state)
{
	struct client *c = *state;

	send_line(c, "EHLO client.example.com");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
	/* RFC 2034 4: no enhanced codes in the EHLO reply. */
	assert_string_equal(replies(c),
		"250-mx.example.org Hello client.example.com [" CLIENT_IP "]\r\n"
		"250-PIPELINING\r\n"
		"250-SIZE 1000\r\n"
		"250-8BITMIME\r\n"
		"250-ENHANCEDSTATUSCODES\r\n"
		"250-DSN\r\n"
		"250-STARTTLS\r\n"
		"250 SMTPUTF8\r\n");
	assert_true(smtp_session_esmtp(c->s));
	assert_string_equal(smtp_session_helo(c->s), "client.example.com");
}

static void test_ehlo_without_certificate_does_not_offer_starttls(void **state)
{
	struct client *c = replace_client(state, false, false);

	send_line(c, "EHLO client.example.com");
	assert_null(strstr(replies(c), "STARTTLS"));
	assert_non_null(strstr(replies(c), "250 SMTPUTF8\r\n"));
}

static void test_ehlo_over_tls_does_not_offer_starttls(void **state)
{
	struct client *c = replace_client(state, true, true);

	send_line(c, "EHLO client.example.com");
	assert_null(strstr(replies(c), "STARTTLS"));
	assert_true(smtp_session_tls_active(c->s));
}

static void test_helo_gets_250_with_hostname(void **state)
{
	struct client *c = *state;

	send_line(c, "HELO client.example.com");
	assert_string_equal(replies(c), "250 mx.example.org\r\n");
	assert_false(smtp_session_esmtp(c->s));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
}

static void test_ehlo_without_name_gets_501(void **state)
{
	struct client *c = *state;

	expect(c, "EHLO", "501 5.5.4");
	expect(c, "HELO ", "501 5.5.4");
	expect(c, "EHLO two words", "501 5.5.4");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
}

static void test_ehlo_resets_transaction(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	ehlo(c); /* RFC 5321 4.1.4 */
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
	expect(c, "RCPT TO:<alice@example.org>", "503 5.5.1");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
}

/* ---- command sequence (RFC 5321 4.1.4, 503) ---- */

static void test_mail_before_ehlo_gets_503(void **state)
{
	struct client *c = *state;

	expect(c, "MAIL FROM:<bob@example.com>", "503 5.5.1");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
}

static void test_rcpt_before_mail_gets_503(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "RCPT TO:<alice@example.org>", "503 5.5.1");
}

static void test_data_before_rcpt_gets_503(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "DATA", "503 5.5.1");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
	expect(c, "DATA", "503 5.5.1"); /* RFC 5321 3.3: no valid recipients */
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_MAIL);
}

static void test_nested_mail_gets_503(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect(c, "MAIL FROM:<carol@example.com>", "503 5.5.1");
	assert_string_equal(smtp_session_tx(c->s)->sender.address, "bob@example.com");
}

static void test_data_with_argument_gets_501(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect(c, "DATA now", "501 5.5.4");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_RCPT);
}

/* Brings a fresh session into one of the command states. */
static void enter_state(struct client *c, enum smtp_state target)
{
	if (target == SMTP_STATE_READY)
		ehlo(c);
	else if (target == SMTP_STATE_MAIL)
		begin_mail(c);
	else if (target == SMTP_STATE_RCPT)
		start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(smtp_session_state(c->s), target);
}

/* RFC 5321 4.1.4 / 4.3.2: every command given out of sequence, in every command state, gets
 * its exact 503 (from the command table's state masks) and leaves the state as it was. The
 * argument checks of DATA, RSET and STARTTLS and the connection checks of STARTTLS outrank
 * the sequence. */
static void test_out_of_sequence_replies_in_every_state(void **state)
{
	static const struct {
		enum smtp_state state;
		const char *line;
		const char *reply; /* NULL: the command is in sequence there */
	} cases[] = {
		{SMTP_STATE_CONNECTED, "MAIL FROM:<a@example.com>", "503 5.5.1 Send EHLO or HELO first"},
		{SMTP_STATE_MAIL, "MAIL FROM:<a@example.com>", "503 5.5.1 Nested MAIL command"},
		{SMTP_STATE_RCPT, "MAIL FROM:<a@example.com>", "503 5.5.1 Nested MAIL command"},
		{SMTP_STATE_CONNECTED, "RCPT TO:<a@example.org>", "503 5.5.1 Need MAIL before RCPT"},
		{SMTP_STATE_READY, "RCPT TO:<a@example.org>", "503 5.5.1 Need MAIL before RCPT"},
		{SMTP_STATE_CONNECTED, "DATA", "503 5.5.1 Need RCPT before DATA"},
		{SMTP_STATE_READY, "DATA", "503 5.5.1 Need RCPT before DATA"},
		{SMTP_STATE_MAIL, "DATA", "503 5.5.1 No valid recipients"},
		{SMTP_STATE_READY, "DATA x", "501 5.5.4 Syntax: DATA"},
		{SMTP_STATE_RCPT, "RSET x", "501 5.5.4 Syntax: RSET"},
		{SMTP_STATE_MAIL, "STARTTLS", "503 5.5.1 STARTTLS not allowed during a transaction"},
		{SMTP_STATE_RCPT, "STARTTLS", "503 5.5.1 STARTTLS not allowed during a transaction"},
		{SMTP_STATE_MAIL, "STARTTLS x", "501 5.5.4 Syntax: STARTTLS"},
		{SMTP_STATE_CONNECTED, "AUTH PLAIN", "503 5.5.1 Send EHLO first"},
		{SMTP_STATE_MAIL, "AUTH PLAIN", "503 5.5.1 AUTH not allowed during a transaction"},
		{SMTP_STATE_RCPT, "AUTH PLAIN", "503 5.5.1 AUTH not allowed during a transaction"},
	};

	teardown_client(state);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *c = client_new(true, false);
		char want[128];

		enter_state(c, cases[i].state);
		send_line(c, cases[i].line);
		snprintf(want, sizeof(want), "%s\r\n", cases[i].reply);
		if (strcmp(replies(c), want) != 0)
			fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, cases[i].line,
				replies(c), cases[i].reply);
		assert_int_equal(c->action, SMTP_ACTION_NONE);
		assert_int_equal(smtp_session_state(c->s), cases[i].state);
		*state = c;
		teardown_client(state);
	}
	*state = client_new(true, false);
}

/* STARTTLS's own conditions come before the sequence: the same reply in a transaction. */
static void test_starttls_conditions_outrank_the_sequence(void **state)
{
	struct client *c = replace_client(state, false, false);

	begin_mail(c);
	expect(c, "STARTTLS", "454 4.7.0");
	c = replace_client(state, true, true);
	begin_mail(c);
	send_line(c, "STARTTLS");
	assert_string_equal(replies(c), "503 5.5.1 TLS already active\r\n");
}

/* ---- recipients ---- */

static void test_rcpt_to_any_local_part_accepted(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<anything.at.all+tag@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<x@example.net>", "250 2.1.5");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 2);
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address,
		"anything.at.all+tag@example.org");
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[0].server, &cfg.servers[0]);
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[1].server, &cfg.servers[1]);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_RCPT);
}

static void test_rcpt_to_blocked_address_gets_553(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<blocked@example.org>", "553 5.7.1");
	expect(c, "RCPT TO:<Blocked@EXAMPLE.org>", "553 5.7.1");
	/* Blocked at example.org only. */
	expect(c, "RCPT TO:<blocked@example.net>", "250 2.1.5");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 1);
}

/* RFC 5322 3.2.4: a quoted-string means its content, so "blocked"@example.org and
 * "bl\ocked"@example.org are the mailbox blocked@example.org (RFC 5321 4.1.2); quoting must not
 * get around BlockedAddresses. */
static void test_quoted_form_of_blocked_address_gets_553(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<\"blocked\"@example.org>", "553 5.7.1");
	expect(c, "RCPT TO:<\"bl\\ocked\"@example.org>", "553 5.7.1");
	expect(c, "RCPT TO:<\"BLOCKED\"@example.org>", "553 5.7.1");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
}

static void test_rcpt_to_other_domain_gets_550(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.com>", "550 5.7.1");
	expect(c, "RCPT TO:<alice@sub.example.org>", "550 5.7.1");
	expect(c, "RCPT TO:<alice@example.org.evil.com>", "550 5.7.1");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_MAIL);
}

/* Accepts MAX_RECIPIENTS distinct recipients (a repeated one counts once). */
static void fill_recipients(struct client *c)
{
	char line[64];

	for (int i = 0; i < MAX_RECIPIENTS; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<r%d@example.org>", i);
		expect(c, line, "250 2.1.5");
	}
}

static void test_rcpt_beyond_max_recipients_gets_452(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	fill_recipients(c);
	/* RFC 5321 4.5.3.1.10: 452 (not 552) when the recipient limit is reached. */
	expect(c, "RCPT TO:<alice@example.org>", "452 4.5.3");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, MAX_RECIPIENTS);
	/* The message goes to the ones already accepted (docs/smtp.md). */
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
}

/* docs/smtp.md: "452 4.5.3 for each extra one; the message goes to the ones already accepted".
 * A client that pipelines more recipients than the limit (RFC 5321 4.5.3.1.10 expects it to
 * send the rest later) must not be hung up on as if it sent garbage; Postfix does not count
 * excess recipients as errors (smtpd_recipient_overshoot_limit). */
static void test_rcpt_beyond_max_recipients_does_not_close_session(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	fill_recipients(c);
	for (int i = 0; i < SMTP_MAX_ERRORS + 5; i++)
		expect(c, "RCPT TO:<alice@example.org>", "452 4.5.3");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_RCPT);
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
}

static void test_duplicate_rcpt_is_accepted_once(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<ALICE@example.org>", "250 2.1.5");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 1);
}

static void test_postmaster_without_domain_accepted(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	/* RFC 5321 4.5.1: <Postmaster> without a domain, case-insensitive. */
	expect(c, "RCPT TO:<Postmaster>", "250 2.1.5");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address, "postmaster@example.org");
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[0].server, &cfg.servers[0]);
}

static void test_source_route_is_stripped_and_remote_domain_refused(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	/* RFC 5321 4.1.2 / Appendix C: the route is ignored, the mailbox is what counts. */
	expect(c, "RCPT TO:<@example.org:victim@relay.example.com>", "550 5.7.1");
	expect(c, "RCPT TO:<@a.example,@example.org:victim@relay.example.com>", "550 5.7.1");
	expect(c, "RCPT TO:<@relay.example.com:alice@example.org>", "250 2.1.5");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address, "alice@example.org");
}

static void test_percent_hack_stays_local(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	/* "%" is an ordinary local-part character: delivered here, never relayed onwards. */
	expect(c, "RCPT TO:<victim%relay.example.com@example.org>", "250 2.1.5");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address,
		"victim%relay.example.com@example.org");
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[0].server, &cfg.servers[0]);
	expect(c, "RCPT TO:<victim@relay.example.com%example.org>", "501 5.1.3");
}

static void test_quoted_local_part(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<\"bob smith\"@example.com>", "250 2.1.0");
	expect(c, "RCPT TO:<\"unterminated@example.org>", "501 5.1.3");
	expect(c, "RCPT TO:<\"john doe\"@example.org>", "250 2.1.5");
	/* A ">" or "@" inside the quotes is part of the local-part (RFC 5321 4.1.2). */
	expect(c, "RCPT TO:<\"a>b@c\"@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<\"a\\\"b\"@example.org>", "250 2.1.5");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address, "\"john doe\"@example.org");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[1].address, "\"a>b@c\"@example.org");
	assert_string_equal(smtp_session_tx(c->s)->rcpts[2].address, "\"a\\\"b\"@example.org");
}

static void test_utf8_address_needs_smtputf8(void **state)
{
	struct client *c = *state;

	ehlo(c);
	/* RFC 6531 3.5: non-ASCII addresses only in an SMTPUTF8 transaction. */
	expect(c, "MAIL FROM:<j\xc3\xb6rg@example.com>", "553 5.6.7");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
	expect(c, "RCPT TO:<j\xc3\xb6rg@example.org>", "553 5.6.7");
	expect(c, "RSET", "250 2.0.0");
	expect(c, "MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", "250 2.1.0");
	assert_true(smtp_session_tx(c->s)->smtputf8);
	expect(c, "RCPT TO:<j\xc3\xb6rg@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
}

static void test_smtputf8_with_value_gets_555(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> SMTPUTF8=yes", "555 5.5.4");
}

static void test_rcpt_parameters_get_555(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org> FOO=BAR", "555 5.5.4");
}

/* RFC 3461 4.1/4.2: NOTIFY and ORCPT are accepted and kept per recipient. */
static void test_rcpt_dsn_parameters_are_kept(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;alice+2B1@example.org",
		"250 2.1.5");
	const struct smtp_rcpt *r = &smtp_session_tx(c->s)->rcpts[0];
	assert_int_equal(r->notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	assert_string_equal(r->orcpt, "rfc822;alice+1@example.org");
	expect(c, "RCPT TO:<bob@example.org> NOTIFY=NEVER,SUCCESS", "501 5.5.4");
	expect(c, "RCPT TO:<bob@example.org> NOTIFY=SOMETIMES", "501 5.5.4");
	expect(c, "RCPT TO:<bob@example.org> ORCPT=no-semicolon", "501 5.5.4");
}

/* RFC 3461 4.3/4.4: RET and ENVID on MAIL. */
static void test_mail_dsn_parameters_are_kept(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> RET=HDRS ENVID=QQ+2B314", "250 2.1.0");
	assert_int_equal(smtp_session_tx(c->s)->ret, SMTP_DSN_RET_HDRS);
	assert_string_equal(smtp_session_tx(c->s)->envid, "QQ+314");
	expect(c, "RSET", "250 2.0.0");
	expect(c, "MAIL FROM:<bob@example.com> RET=MOST", "501 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> ENVID=bad+ZZ", "501 5.5.4");
}

static void test_bad_recipient_syntax_gets_501(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<>", "501 5.1.3");
	expect(c, "RCPT TO:<alice>", "501 5.1.3");
	expect(c, "RCPT TO:<alice@>", "501 5.1.3");
	expect(c, "RCPT TO:<alice@example.org", "501 5.1.3");
	expect(c, "RCPT TO:<alice@-example.org>", "501 5.1.3");
	expect(c, "RCPT TO:<.alice@example.org>", "501 5.1.3");
	expect(c, "RCPT <alice@example.org>", "501 5.5.4");
	expect(c, "RCPT", "501 5.5.4");
}

static void test_address_too_long_gets_501(void **state)
{
	struct client *c = *state;
	char line[SMTP_COMMAND_LINE_MAX];
	char local[SMTP_LOCAL_PART_MAX + 2];

	begin_mail(c);
	/* RFC 5321 4.5.3.1.1: a local-part is at most 64 octets. */
	memset(local, 'a', SMTP_LOCAL_PART_MAX);
	local[SMTP_LOCAL_PART_MAX] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<%s@example.org>", local);
	expect(c, line, "250 2.1.5");
	memset(local, 'a', SMTP_LOCAL_PART_MAX + 1);
	local[SMTP_LOCAL_PART_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<%s@example.org>", local);
	expect(c, line, "501 5.1.3");
}

/* ---- senders ---- */

static void test_mail_from_local_domain_without_auth_gets_550(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<alice@example.org>", "550 5.7.1");
	expect(c, "MAIL FROM:<alice@EXAMPLE.NET>", "550 5.7.1");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	expect(c, "MAIL FROM:<alice@sub.example.org>", "250 2.1.0");
}

static void test_null_reverse_path_accepted(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<>", "250 2.1.0");
	assert_true(smtp_session_tx(c->s)->sender.null_path);
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	assert_int_equal(send_data_str(c, "Subject: bounce\r\n\r\nUndeliverable\r\n.\r\n"),
		SMTP_DATA_COMMIT);
}

static void test_null_reverse_path_accepted_after_helo(void **state)
{
	struct client *c = *state;

	send_line(c, "HELO client.example.com");
	expect(c, "MAIL FROM:<>", "250 2.1.0");
}

static void test_mail_from_records_sender_in_transaction(void **state)
{
	struct client *c = *state;
	const struct smtp_path *sender;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> BODY=8BITMIME SIZE=500", "250 2.1.0");
	sender = &smtp_session_tx(c->s)->sender;
	assert_false(sender->null_path);
	assert_string_equal(sender->address, "bob@example.com");
	assert_int_equal(sender->local_len, 3);
	assert_int_equal(sender->domain_len, 11);
	/* smtp/address.h: domain points into address; the transaction's copy must point into its
	 * own address, not into the parser's copy on a stack frame that is gone. */
	if (sender->domain != sender->address + sender->local_len + 1)
		fail_msg("tx.sender.domain points outside tx.sender.address (dangling)");
	assert_true(smtp_session_tx(c->s)->body_8bit);
	assert_int_equal(smtp_session_tx(c->s)->declared_size, 500);
}

static void test_space_after_colon_accepted(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM: <bob@example.com>", "250 2.1.0");
	expect(c, "RCPT TO: <alice@example.org>", "250 2.1.5");
}

static void test_bad_sender_syntax_gets_501(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob>", "501 5.1.7");
	expect(c, "MAIL FROM:<bob@example.com>x", "501 5.1.7");
	expect(c, "MAIL FROM:", "501 5.1.7");
	expect(c, "MAIL TO:<bob@example.com>", "501 5.5.4");
	expect(c, "MAIL", "501 5.5.4");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
}

/* ---- ESMTP parameters (RFC 1870 SIZE, RFC 6152 8BITMIME) ---- */

static void test_size_parameter_over_limit_gets_552(void **state)
{
	struct client *c = *state;

	ehlo(c);
	/* RFC 1870 6.1: refused at MAIL when the declared size is already too big. */
	expect(c, "MAIL FROM:<bob@example.com> SIZE=1001", "552 5.3.4");
	expect(c, "MAIL FROM:<bob@example.com> SIZE=99999999999999999999", "501 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> SIZE=1000", "250 2.1.0");
}

static void test_bad_size_parameter_gets_501(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> SIZE=", "501 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> SIZE", "501 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> SIZE=12k", "501 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> SIZE=-1", "501 5.5.4");
}

static void test_body_parameter_values(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> BODY=BINARYMIME", "555 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> body=7bit", "250 2.1.0");
	assert_false(smtp_session_tx(c->s)->body_8bit);
}

static void test_unknown_mail_parameter_gets_555(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> AUTH=<>", "555 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> =x", "555 5.5.4");
	expect(c, "MAIL FROM:<bob@example.com> A B C D E F G H I", "555 5.5.4");
}

static void test_mail_parameters_after_helo_get_555(void **state)
{
	struct client *c = *state;

	send_line(c, "HELO client.example.com");
	expect(c, "MAIL FROM:<bob@example.com> SIZE=10", "555 5.5.4");
}

/* ---- DATA ---- */

static void test_data_commit_then_250_with_queue_id(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Subject: hi\r\n\r\nHello\r\n.\r\n"), SMTP_DATA_COMMIT);
	assert_string_equal(replies(c), ""); /* nothing until the message is durable */
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_COMMITTING);
	assert_message(c, "Subject: hi\r\n\r\nHello\r\n");
	/* Commands are not read while committing. */
	send_line(c, "NOOP");
	assert_string_equal(replies(c), "");
	strbuf_reset(&c->out);
	smtp_session_data_committed(c->s, true, &c->out);
	assert_string_equal(replies(c), "250 2.0.0 Ok: queued as 1A2B3C4D5E\r\n");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
}

static void test_second_transaction_in_one_session(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "one\r\n.\r\n"), SMTP_DATA_COMMIT);
	smtp_session_data_committed(c->s, true, &c->out);
	expect(c, "MAIL FROM:<carol@example.com>", "250 2.1.0");
	expect(c, "RCPT TO:<dave@example.net>", "250 2.1.5");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 1);
	assert_int_equal(send_data_str(c, "two\r\n.\r\n"), SMTP_DATA_COMMIT);
	assert_message(c, "two\r\n");
}

static void test_dot_stuffed_data_stored_unstuffed(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	/* RFC 5321 4.5.2: one leading dot is removed from each line. */
	assert_int_equal(send_data_str(c, "..\r\n...\r\n..x\r\na.b\r\n.\r\n"), SMTP_DATA_COMMIT);
	assert_message(c, ".\r\n..\r\n.x\r\na.b\r\n");
}

static void test_empty_message_accepted(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, ".\r\n"), SMTP_DATA_COMMIT);
	assert_message(c, "");
}

static void test_eight_bit_and_nul_data_pass_through(void **state)
{
	struct client *c = *state;
	static const char raw[] = "caf\xc3\xa9 \x00\xff\r\n.\r\n";

	start_transaction(c, "MAIL FROM:<bob@example.com> BODY=8BITMIME");
	assert_int_equal(send_data(c, raw, sizeof(raw) - 1), SMTP_DATA_COMMIT);
	assert_int_equal(c->message_len, sizeof(raw) - 1 - 3);
	assert_memory_equal(c->message, raw, c->message_len);
}

static void test_bytes_after_end_of_data_are_the_next_command(void **state)
{
	struct client *c = *state;
	static const char raw[] = "Hi\r\n.\r\nQUIT\r\n";
	char out[sizeof(raw) + 1];
	size_t out_len = 0;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	open_data(c);
	/* PIPELINING: the glue hands over all it has; the session takes only the message. */
	assert_int_equal(smtp_session_feed_data(c->s, raw, sizeof(raw) - 1, out, &out_len), 7);
	assert_int_equal(out_len, 4);
	assert_true(smtp_session_data_done(c->s));
}

static void test_feed_data_outside_data_consumes_nothing(void **state)
{
	struct client *c = *state;
	char out[16];
	size_t out_len = 99;

	ehlo(c);
	assert_int_equal(smtp_session_feed_data(c->s, "x\r\n.\r\n", 6, out, &out_len), 0);
	assert_int_equal(out_len, 0);
	assert_false(smtp_session_data_done(c->s));
}

static void test_command_lines_ignored_during_data(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	send_line(c, "DATA");
	/* Nor while the storage is being opened: the glue feeds none then. */
	send_line(c, "QUIT");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
	assert_string_equal(replies(c), "");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA_OPENING);
	smtp_session_data_ready(c->s, &c->out);
	send_line(c, "QUIT");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
	assert_string_equal(replies(c), "");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA);
}

static void test_oversize_data_gets_552_even_with_small_declared_size(void **state)
{
	struct client *c = *state;
	char raw[MAX_MESSAGE_SIZE + 16];

	start_transaction(c, "MAIL FROM:<bob@example.com> SIZE=10");
	/* MAX_MESSAGE_SIZE - 1 octets and CRLF: one over the limit. */
	memset(raw, 'x', MAX_MESSAGE_SIZE - 1);
	memcpy(raw + MAX_MESSAGE_SIZE - 1, "\r\n.\r\n", 5);
	expect_data_refused(c, raw, MAX_MESSAGE_SIZE + 4, "552 5.3.4");
	assert_int_equal(c->message_len, MAX_MESSAGE_SIZE);
	/* The session goes on. */
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
}

static void test_message_of_exactly_max_size_accepted(void **state)
{
	struct client *c = *state;
	char raw[MAX_MESSAGE_SIZE + 16];

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	memset(raw, 'x', MAX_MESSAGE_SIZE - 2);
	memcpy(raw + MAX_MESSAGE_SIZE - 2, "\r\n.\r\n", 5);
	assert_int_equal(send_data(c, raw, MAX_MESSAGE_SIZE + 3), SMTP_DATA_COMMIT);
	assert_int_equal(c->message_len, MAX_MESSAGE_SIZE);
}

static void test_bare_lf_in_data_refused_with_554(void **state)
{
	struct client *c = *state;
	static const char raw[] = "Subject: x\n\nbody\r\n.\r\n";

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	/* RFC 5321 2.3.8, docs/smtp.md: refused whole, like smtpd_forbid_bare_newline. */
	expect_data_refused(c, raw, sizeof(raw) - 1, "554 5.6.0");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
}

static void test_bare_cr_in_data_refused_with_554(void **state)
{
	struct client *c = *state;
	static const char raw[] = "Subject: x\r\n\r\nbo\rdy\r\n.\r\n";

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect_data_refused(c, raw, sizeof(raw) - 1, "554 5.6.0");
}

/* CVE-2023-51764: a second transaction hidden behind <LF>.<LF> is message text, and the whole
 * message is refused once the real <CRLF>.<CRLF> arrives. */
static void test_smuggled_transaction_is_not_executed(void **state)
{
	struct client *c = *state;
	static const char raw[] =
		"Subject: one\r\n\r\nHi\n.\n"
		"MAIL FROM:<admin@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
		"Subject: smuggled\r\n\r\n.\r\n";

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect_data_refused(c, raw, sizeof(raw) - 1, "554 5.6.0");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
}

/* The storage is opened before DATA is answered: a failure there is the reply to DATA, no
 * 354 is sent and no message data is read (the client must not send it, RFC 5321 4.1.1.4). */
static void test_storage_failure_answers_data_with_451(void **state)
{
	struct client *c = *state;
	char out[16];
	size_t out_len = 99;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	send_line(c, "DATA");
	assert_int_equal(c->action, SMTP_ACTION_BEGIN_DATA);
	assert_string_equal(replies(c), "");
	smtp_session_storage_failed(c->s, EACCES, &c->out); /* the maildrop file did not open */
	assert_true(is_single_reply(replies(c), "451 4.3.0"));
	/* No data phase: the next bytes are commands again. */
	assert_int_equal(smtp_session_feed_data(c->s, "Hi\r\n.\r\n", 7, out, &out_len), 0);
	assert_int_equal(out_len, 0);
	expect(c, "NOOP", "250 2.0.0");
}

/* A storage failure at DATA ends the transaction, as one after the final dot does: the next
 * MAIL is a new transaction (not a "503 Nested MAIL"), and a DATA alone is out of sequence. */
static void test_storage_failure_at_data_ends_the_transaction(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect(c, "RCPT TO:<carol@example.net>", "250 2.1.5");
	send_line(c, "DATA");
	smtp_session_set_queue_id(c->s, "1A2B3C4D5E");
	smtp_session_storage_failed(c->s, EIO, &c->out);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
	assert_string_equal(smtp_session_tx(c->s)->queue_id, "");
	expect(c, "DATA", "503 5.5.1");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	smtp_session_data_committed(c->s, true, &c->out);
	assert_true(is_single_reply(replies(c), "250 2.0.0"));
}

static void test_commit_failure_gives_451(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_committed(c->s, false, &c->out); /* fsync or rename failed */
	assert_true(is_single_reply(replies(c), "451 4.3.0"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
}

static void test_commit_failure_on_full_disk_gives_452_4_3_1(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_failed(c->s, ENOSPC, &c->out);
	assert_true(is_single_reply(replies(c), "452 4.3.1"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	/* A quota is a full disk for this user. */
	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_failed(c->s, EDQUOT, &c->out);
	assert_true(is_single_reply(replies(c), "452 4.3.1"));
	/* Any other error stays the generic 451 4.3.0. */
	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_failed(c->s, EIO, &c->out);
	assert_true(is_single_reply(replies(c), "451 4.3.0"));
}

static void test_storage_full_at_begin_answers_data_with_452_4_3_1(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	send_line(c, "DATA");
	smtp_session_storage_failed(c->s, ENOSPC, &c->out);
	assert_true(is_single_reply(replies(c), "452 4.3.1"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	/* A quota is a full disk for this user. */
	start_transaction(c, "MAIL FROM:<bob@example.com>");
	send_line(c, "DATA");
	smtp_session_storage_failed(c->s, EDQUOT, &c->out);
	assert_true(is_single_reply(replies(c), "452 4.3.1"));
}

/* ---- where the message goes ---- */

static void test_two_domains_give_two_servers(void **state)
{
	struct client *c = *state;
	const struct server_config *servers[4];

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<carol@example.net>", "250 2.1.5");
	expect(c, "RCPT TO:<dave@example.org>", "250 2.1.5");
	/* Stored once per maildrop, in first-seen order. */
	assert_int_equal(smtp_tx_servers(smtp_session_tx(c->s), servers, 4), 2);
	assert_ptr_equal(servers[0], &cfg.servers[0]);
	assert_ptr_equal(servers[1], &cfg.servers[1]);
	assert_int_equal(smtp_tx_servers(smtp_session_tx(c->s), servers, 1), 1);
	assert_ptr_equal(servers[0], &cfg.servers[0]);
}

static void test_one_domain_gives_one_server(void **state)
{
	struct client *c = *state;
	const struct server_config *servers[4];

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.net>", "250 2.1.5");
	expect(c, "RCPT TO:<dave@EXAMPLE.NET>", "250 2.1.5");
	assert_int_equal(smtp_tx_servers(smtp_session_tx(c->s), servers, 4), 1);
	assert_ptr_equal(servers[0], &cfg.servers[1]);
}

static void test_case_insensitive_domain(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@Example.COM>", "250 2.1.0");
	expect(c, "RCPT TO:<Alice@EXAMPLE.ORG>", "250 2.1.5");
	expect(c, "RCPT TO:<carol@Example.Net>", "250 2.1.5");
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[0].server, &cfg.servers[0]);
	assert_ptr_equal(smtp_session_tx(c->s)->rcpts[1].server, &cfg.servers[1]);
	/* The address is kept as given (the local-part may be case-sensitive, RFC 5321 2.4). */
	assert_string_equal(smtp_session_tx(c->s)->rcpts[0].address, "Alice@EXAMPLE.ORG");
}

/* ---- trace headers (RFC 5321 4.4) ---- */

static void assert_trace(struct client *c, const struct server_config *server, const char *want)
{
	struct strbuf headers;

	strbuf_init(&headers);
	mail_trace_headers(&headers, c->s, server, cfg.hostname, FIXED_TIME);
	assert_string_equal(headers.data, want);
	strbuf_free(&headers);
}

static void test_trace_headers_for_single_recipient(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	smtp_session_set_queue_id(c->s, "1A2B3C4D5E");
	assert_trace(c, &cfg.servers[0],
		"Return-Path: <bob@example.com>\r\n"
		"Delivered-To: alice@example.org\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with ESMTP\r\n"
		"\tid 1A2B3C4D5E\r\n"
		"\tfor <alice@example.org>; " FIXED_DATE "\r\n");
}

static void test_trace_headers_over_tls_name_esmtps_and_cipher(void **state)
{
	struct client *c = *state;

	send_line(c, "STARTTLS");
	smtp_session_tls_started(c->s, TLS_DESCRIPTION);
	start_transaction(c, "MAIL FROM:<bob@example.com>");
	smtp_session_set_queue_id(c->s, "1A2B3C4D5E");
	assert_trace(c, &cfg.servers[0],
		"Return-Path: <bob@example.com>\r\n"
		"Delivered-To: alice@example.org\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with ESMTPS\r\n"
		"\t(" TLS_DESCRIPTION ")\r\n"
		"\tid 1A2B3C4D5E\r\n"
		"\tfor <alice@example.org>; " FIXED_DATE "\r\n");
}

static void test_trace_headers_for_several_recipients_omit_for(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<carol@example.net>", "250 2.1.5");
	expect(c, "RCPT TO:<dave@example.org>", "250 2.1.5");
	smtp_session_set_queue_id(c->s, "Q1");
	/* "for" would disclose the Bcc recipients to each other. */
	assert_trace(c, &cfg.servers[0],
		"Return-Path: <bob@example.com>\r\n"
		"Delivered-To: alice@example.org\r\n"
		"Delivered-To: dave@example.org\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with ESMTP\r\n"
		"\tid Q1; " FIXED_DATE "\r\n");
	/* Each maildrop names only its own recipients. */
	assert_trace(c, &cfg.servers[1],
		"Return-Path: <bob@example.com>\r\n"
		"Delivered-To: carol@example.net\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with ESMTP\r\n"
		"\tid Q1\r\n"
		"\tfor <carol@example.net>; " FIXED_DATE "\r\n");
}

static void test_trace_headers_for_bounce_after_helo(void **state)
{
	struct client *c = *state;

	send_line(c, "HELO client.example.com");
	expect(c, "MAIL FROM:<>", "250 2.1.0");
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	smtp_session_set_queue_id(c->s, "Q2");
	assert_trace(c, &cfg.servers[0],
		"Return-Path: <>\r\n"
		"Delivered-To: alice@example.org\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with SMTP\r\n"
		"\tid Q2\r\n"
		"\tfor <alice@example.org>; " FIXED_DATE "\r\n");
}

static void test_trace_headers_for_smtputf8_transaction(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com> SMTPUTF8", "250 2.1.0");
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
	smtp_session_set_queue_id(c->s, "Q3");
	/* RFC 6531 3.7.3 */
	assert_trace(c, &cfg.servers[0],
		"Return-Path: <bob@example.com>\r\n"
		"Delivered-To: alice@example.org\r\n"
		"Received: from client.example.com ([" CLIENT_IP "])\r\n"
		"\tby mx.example.org (mailpopbox) with UTF8SMTP\r\n"
		"\tid Q3\r\n"
		"\tfor <alice@example.org>; " FIXED_DATE "\r\n");
}

/* ---- STARTTLS (RFC 3207) ---- */

static void test_starttls_resets_state_and_requires_ehlo(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "STARTTLS", "220 2.0.0");
	assert_int_equal(c->action, SMTP_ACTION_STARTTLS);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_STARTTLS);
	/* Plaintext pipelined after STARTTLS is not executed (CVE-2011-0411). */
	send_line(c, "MAIL FROM:<bob@example.com>");
	assert_string_equal(replies(c), "");
	smtp_session_tls_started(c->s, TLS_DESCRIPTION);
	/* RFC 3207 4.2: the server discards all knowledge obtained from the client. */
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
	assert_string_equal(smtp_session_helo(c->s), "");
	assert_false(smtp_session_esmtp(c->s));
	assert_true(smtp_session_tls_active(c->s));
	assert_string_equal(smtp_session_tls_description(c->s), TLS_DESCRIPTION);
	expect(c, "MAIL FROM:<bob@example.com>", "503 5.5.1");
	send_line(c, "EHLO client.example.com");
	assert_null(strstr(replies(c), "STARTTLS"));
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
}

static void test_starttls_twice_gets_503(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "STARTTLS", "220 2.0.0");
	smtp_session_tls_started(c->s, TLS_DESCRIPTION);
	ehlo(c);
	expect(c, "STARTTLS", "503 5.5.1");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
}

static void test_starttls_without_certificate_gets_454(void **state)
{
	struct client *c = replace_client(state, false, false);

	ehlo(c);
	expect(c, "STARTTLS", "454 4.7.0");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
	assert_false(smtp_session_tls_active(c->s));
}

static void test_starttls_during_transaction_gets_503(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	expect(c, "STARTTLS", "503 5.5.1");
	expect(c, "STARTTLS now", "501 5.5.4");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_RCPT);
}

static void test_no_tls_description_without_tls(void **state)
{
	struct client *c = *state;

	assert_null(smtp_session_tls_description(c->s));
	assert_false(smtp_session_tls_active(c->s));
	assert_string_equal(smtp_session_client_ip(c->s), CLIENT_IP);
}

/* ---- other commands ---- */

static void test_unknown_command_gets_500(void **state)
{
	struct client *c = *state;

	expect(c, "FOO bar", "500 5.5.2");
	expect(c, "MAILFROM:<bob@example.com>", "500 5.5.2");
	expect(c, "", "500 5.5.2");
	expect(c, "\x16\x03\x01\x02", "500 5.5.2"); /* a TLS ClientHello on the plain port */
	ehlo(c);
}

static void test_nul_in_command_gets_500(void **state)
{
	struct client *c = *state;

	expect_n(c, "EHLO a\0b", 8, "500 5.5.2");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
	ehlo(c);
	expect_n(c, "MAIL FROM:<bob@example.com>\0", 28, "500 5.5.2");
	expect_n(c, "\0", 1, "500 5.5.2");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
}

static void test_line_too_long_gets_500(void **state)
{
	struct client *c = *state;

	strbuf_reset(&c->out);
	assert_int_equal(smtp_session_line_too_long(c->s, &c->out), SMTP_ACTION_NONE);
	/* RFC 5321 4.5.3.1.4 */
	assert_true(is_single_reply(replies(c), "500 5.5.2"));
	ehlo(c);
}

static void test_error_limit_closes_session(void **state)
{
	struct client *c = *state;

	for (int i = 1; i < SMTP_MAX_ERRORS; i++)
		expect(c, "FOO", "500 5.5.2");
	expect(c, "NOOP", "250 2.0.0");
	send_line(c, "FOO");
	assert_string_equal(replies(c),
		"500 5.5.2 Command not recognized\r\n"
		"421 4.7.0 Too many errors, closing connection\r\n");
	assert_int_equal(c->action, SMTP_ACTION_CLOSE);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CLOSED);
	/* Nothing more is read. */
	send_line(c, "EHLO client.example.com");
	assert_string_equal(replies(c), "");
	assert_int_equal(c->action, SMTP_ACTION_NONE);
}

static void test_vrfy_gets_252(void **state)
{
	struct client *c = *state;

	/* RFC 5321 3.5.3: no verification, but mail will be accepted. */
	expect(c, "VRFY alice", "252 2.5.0");
	expect(c, "VRFY <alice@example.org>", "252 2.5.0");
	expect(c, "VRFY", "501 5.5.4");
}

static void test_expn_gets_502(void **state)
{
	struct client *c = *state;

	expect(c, "EXPN staff", "502 5.5.1");
}

static void test_help_gets_214(void **state)
{
	struct client *c = *state;

	send_line(c, "HELP");
	assert_string_equal(replies(c),
		"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH\r\n"
		"214 2.0.0 See RFC 5321\r\n");
}

static void test_noop_gets_250_with_or_without_argument(void **state)
{
	struct client *c = *state;

	expect(c, "NOOP", "250 2.0.0");
	expect(c, "NOOP anything", "250 2.0.0"); /* RFC 5321 4.1.1.9 */
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
}

static void test_rset_clears_transaction(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com> SIZE=100");
	expect(c, "RSET", "250 2.0.0");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
	assert_int_equal(smtp_session_tx(c->s)->declared_size, 0);
	expect(c, "RCPT TO:<alice@example.org>", "503 5.5.1");
	expect(c, "RSET x", "501 5.5.4");
	/* The EHLO is kept. */
	assert_string_equal(smtp_session_helo(c->s), "client.example.com");
}

static void test_rset_before_ehlo_does_not_skip_ehlo(void **state)
{
	struct client *c = *state;

	expect(c, "RSET", "250 2.0.0");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CONNECTED);
	expect(c, "MAIL FROM:<bob@example.com>", "503 5.5.1");
}

static void test_quit_gets_221_and_closes(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	send_line(c, "QUIT");
	assert_string_equal(replies(c), "221 2.0.0 mx.example.org closing connection\r\n");
	assert_int_equal(c->action, SMTP_ACTION_CLOSE);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CLOSED);
}

static void test_timeout_gets_421_and_closes(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	open_data(c);
	strbuf_reset(&c->out);
	smtp_session_timeout(c->s, &c->out);
	assert_string_equal(replies(c), "421 4.4.2 mx.example.org Timeout, closing connection\r\n");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CLOSED);
}

static void test_shutdown_gets_421(void **state)
{
	struct client *c = *state;

	strbuf_reset(&c->out);
	smtp_session_shutdown(c->s, &c->out);
	assert_true(is_single_reply(replies(c), "421 4.3.2"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_CLOSED);
}

static void test_commands_are_case_insensitive(void **state)
{
	struct client *c = *state;

	send_line(c, "ehlo client.example.com");
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	expect(c, "mail from:<bob@example.com> size=10", "250 2.1.0");
	expect(c, "Rcpt To:<alice@example.org>", "250 2.1.5");
	send_line(c, "data");
	assert_int_equal(c->action, SMTP_ACTION_BEGIN_DATA);
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_DATA_OPENING);
}

/* RFC 2920: the client sends a batch; every command gets its own reply, in order. */
static void test_pipelined_commands_each_get_a_reply(void **state)
{
	struct client *c = *state;
	static const char *const batch[] = {
		"EHLO client.example.com", "MAIL FROM:<bob@example.com>",
		"RCPT TO:<alice@example.org>", "RCPT TO:<nobody@example.com>",
		"RCPT TO:<blocked@example.org>", "RCPT TO:<carol@example.net>", "DATA",
	};
	struct strbuf all;
	int lines = 0;

	strbuf_init(&all);
	for (size_t i = 0; i < sizeof(batch) / sizeof(batch[0]); i++) {
		send_line(c, batch[i]);
		strbuf_append(&all, c->out.data, c->out.len);
	}
	assert_int_equal(c->action, SMTP_ACTION_BEGIN_DATA);
	smtp_session_data_ready(c->s, &all); /* the glue opened the storage */
	for (const char *p = all.data; (p = strstr(p, "\r\n")) != NULL; p += 2)
		lines++;
	assert_int_equal(lines, 8 + 6); /* EHLO has 8 lines */
	assert_non_null(strstr(all.data,
		"250 SMTPUTF8\r\n"
		"250 2.1.0 Ok\r\n"
		"250 2.1.5 Ok\r\n"
		"550 5.7.1 Relay access denied\r\n"
		"553 5.7.1 Recipient address blocked\r\n"
		"250 2.1.5 Ok\r\n"
		"354 End data with <CR><LF>.<CR><LF>\r\n"));
	strbuf_free(&all);
	assert_int_equal(feed_message(c, "x\r\n.\r\n", 6), SMTP_DATA_COMMIT);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_client, teardown_client)

/* ---- AUTH and submission (RFC 4954, RFC 6409) ---- */

/* base64("\0mailbox@example.org\0pw") and with a wrong password "nope". */
#define PLAIN_GOOD "AG1haWxib3hAZXhhbXBsZS5vcmcAcHc="
#define PLAIN_BAD "AG1haWxib3hAZXhhbXBsZS5vcmcAbm9wZQ=="

/* Runs AUTH PLAIN as the glue does: the check, then the verdict. */
static void authenticate(struct client *c, const char *line, const char *want)
{
	send_line(c, line);
	assert_int_equal(c->action, SMTP_ACTION_CHECK_AUTH);
	bool ok = smtp_session_verify_password(c->s);
	strbuf_reset(&c->out);
	smtp_session_auth_result(c->s, ok, &c->out);
	if (!is_single_reply(replies(c), want))
		fail_msg("AUTH got \"%s\", want \"%s ...\"", replies(c), want);
}

static void test_auth_before_tls_gets_538(void **state)
{
	struct client *c = *state;

	ehlo(c);
	expect(c, "AUTH PLAIN " PLAIN_GOOD, "538 5.7.11");
	assert_null(smtp_session_authenticated(c->s));
}

static void test_auth_plain_advertised_only_over_tls(void **state)
{
	struct client *c = *state;

	send_line(c, "EHLO client.example.com");
	assert_null(strstr(replies(c), "AUTH"));
	c = replace_client(state, true, true);
	send_line(c, "EHLO client.example.com");
	assert_non_null(strstr(replies(c), "250-AUTH PLAIN\r\n"));
}

static void test_auth_plain_initial_response_gets_235(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	authenticate(c, "AUTH PLAIN " PLAIN_GOOD, "235 2.7.0");
	assert_ptr_equal(smtp_session_authenticated(c->s), &cfg.servers[0]);
	expect(c, "AUTH PLAIN " PLAIN_GOOD, "503 5.5.1");
}

static void test_auth_plain_continuation_gets_334_then_235(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	send_line(c, "AUTH PLAIN");
	assert_string_equal(replies(c), "334 \r\n");
	authenticate(c, PLAIN_GOOD, "235 2.7.0");
}

static void test_auth_cancel_gets_501(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	send_line(c, "AUTH PLAIN");
	expect(c, "*", "501 5.7.0");
	expect(c, "NOOP", "250 2.0.0");
}

static void test_auth_bad_password_gets_535(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	authenticate(c, "AUTH PLAIN " PLAIN_BAD, "535 5.7.8");
	assert_null(smtp_session_authenticated(c->s));
}

static void test_auth_unknown_user_gets_535(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	/* base64("\0someone@example.org\0pw") */
	authenticate(c, "AUTH PLAIN AHNvbWVvbmVAZXhhbXBsZS5vcmcAcHc=", "535 5.7.8");
}

static void test_auth_other_mechanism_gets_504(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	expect(c, "AUTH LOGIN", "504 5.5.4");
	expect(c, "AUTH PLAIN !!!!", "501 5.5.2");
}

static void test_submission_port_requires_auth_before_mail(void **state)
{
	teardown_client(state);
	struct client *c = *state = client_new_on(true, true, true);

	ehlo(c);
	expect(c, "MAIL FROM:<bob@example.com>", "530 5.7.0");
	authenticate(c, "AUTH PLAIN " PLAIN_GOOD, "235 2.7.0");
	expect(c, "MAIL FROM:<shop@example.org>", "250 2.1.0");
}

static void test_authenticated_sender_must_be_own_domain(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	authenticate(c, "AUTH PLAIN " PLAIN_GOOD, "235 2.7.0");
	expect(c, "MAIL FROM:<bob@example.com>", "550 5.7.1");
	expect(c, "MAIL FROM:<bob@example.net>", "550 5.7.1");
	expect(c, "MAIL FROM:<>", "550 5.7.1");
	expect(c, "MAIL FROM:<anything@EXAMPLE.org>", "250 2.1.0");
	assert_ptr_equal(smtp_session_tx(c->s)->submitter, &cfg.servers[0]);
}

static void test_authenticated_rcpt_to_remote_domain_is_relayed(void **state)
{
	struct client *c = replace_client(state, true, true);

	ehlo(c);
	authenticate(c, "AUTH PLAIN " PLAIN_GOOD, "235 2.7.0");
	expect(c, "MAIL FROM:<shop@example.org>", "250 2.1.0");
	expect(c, "RCPT TO:<friend@remote.example>", "250 2.1.5");
	expect(c, "RCPT TO:<me@example.net>", "250 2.1.5");
	const struct smtp_tx *tx = smtp_session_tx(c->s);
	assert_null(tx->rcpts[0].server);
	assert_ptr_equal(tx->rcpts[1].server, &cfg.servers[1]);
	assert_int_equal(tx->relay_count, 1);
}

static void test_unauthenticated_rcpt_to_remote_domain_gets_550(void **state)
{
	struct client *c = replace_client(state, true, true);

	begin_mail(c);
	expect(c, "RCPT TO:<friend@remote.example>", "550 5.7.1");
	expect(c, "RCPT TO:<\"friend@remote.example\"@example.org>", "250 2.1.5");
	assert_non_null(smtp_session_tx(c->s)->rcpts[0].server);
}

/* ---- sender checks: DNSBL at RCPT, refusals after the data (issue 14) ---- */

static void test_dnsbl_listed_client_gets_554_at_rcpt_but_postmaster(void **state)
{
	struct client *c = *state;

	smtp_session_set_dnsbl(c->s, "bl.test", "Listed: see http://bl.test/?192.0.2.1");
	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "554 5.7.1");
	assert_string_equal(replies(c), "554 5.7.1 Service unavailable; client [192.0.2.1] "
		"listed by bl.test: Listed: see http://bl.test/?192.0.2.1\r\n");
	expect(c, "RCPT TO:<postmaster@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<PostMaster@example.net>", "250 2.1.5");
	expect(c, "RCPT TO:<postmaster>", "250 2.1.5");
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 3);
	expect(c, "RSET", "250 2.0.0");
	expect(c, "MAIL FROM:<bob@example.com>", "250 2.1.0");
	expect(c, "RCPT TO:<\"postmaster\"@example.org>", "250 2.1.5");
	expect(c, "RCPT TO:<postmaster.x@example.org>", "554 5.7.1");
	/* Relaying stays refused as ever. */
	expect(c, "RCPT TO:<postmaster@example.com>", "550 5.7.1");
	/* Each refusal counts as a client error: a listed client cannot go on for ever. */
	for (int i = 0; i < SMTP_MAX_ERRORS - 4; i++)
		expect(c, "RCPT TO:<bob@example.org>", "554 5.7.1");
	send_line(c, "RCPT TO:<bob@example.org>");
	assert_int_equal(c->action, SMTP_ACTION_CLOSE);
}

static void test_dnsbl_reason_is_optional_and_made_printable(void **state)
{
	struct client *c = *state;

	smtp_session_set_dnsbl(c->s, "zen.example", "");
	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "554 5.7.1");
	assert_string_equal(replies(c),
		"554 5.7.1 Service unavailable; client [192.0.2.1] listed by zen.example\r\n");
	smtp_session_set_dnsbl(c->s, "zen.example", "bad\r\n250 ok\x01");
	expect(c, "RCPT TO:<alice@example.org>", "554 5.7.1");
	assert_string_equal(replies(c), "554 5.7.1 Service unavailable; client [192.0.2.1] "
		"listed by zen.example: bad250 ok\r\n");
}

static void test_not_listed_client_is_served(void **state)
{
	struct client *c = *state;

	begin_mail(c);
	expect(c, "RCPT TO:<alice@example.org>", "250 2.1.5");
}

/* The sender checks refuse after the data with 5xx or 4xx (DMARC, the milter): either way
 * the transaction is over and the next one may start. */
static void test_data_rejected_with_5xx_or_4xx_ends_the_transaction(void **state)
{
	struct client *c = *state;

	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_rejected(c->s, "550 5.7.1 DMARC policy of example.com rejects this "
		"message (SPF and DKIM not aligned)", &c->out);
	assert_true(is_single_reply(replies(c), "550 5.7.1"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	assert_int_equal(smtp_session_tx(c->s)->rcpt_count, 0);
	start_transaction(c, "MAIL FROM:<bob@example.com>");
	assert_int_equal(send_data_str(c, "Hi\r\n.\r\n"), SMTP_DATA_COMMIT);
	strbuf_reset(&c->out);
	smtp_session_data_rejected(c->s, "451 4.7.1 Message filter unavailable, try again later",
		&c->out);
	assert_true(is_single_reply(replies(c), "451 4.7.1"));
	assert_int_equal(smtp_session_state(c->s), SMTP_STATE_READY);
	expect(c, "MAIL FROM:<carol@example.com>", "250 2.1.0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_greeting_names_hostname),
		T(test_ehlo_advertises_extensions),
		T(test_ehlo_without_certificate_does_not_offer_starttls),
		T(test_ehlo_over_tls_does_not_offer_starttls),
		T(test_helo_gets_250_with_hostname),
		T(test_ehlo_without_name_gets_501),
		T(test_ehlo_resets_transaction),
		T(test_mail_before_ehlo_gets_503),
		T(test_rcpt_before_mail_gets_503),
		T(test_data_before_rcpt_gets_503),
		T(test_nested_mail_gets_503),
		T(test_data_with_argument_gets_501),
		T(test_out_of_sequence_replies_in_every_state),
		T(test_starttls_conditions_outrank_the_sequence),
		T(test_rcpt_to_any_local_part_accepted),
		T(test_rcpt_to_blocked_address_gets_553),
		T(test_dnsbl_listed_client_gets_554_at_rcpt_but_postmaster),
		T(test_dnsbl_reason_is_optional_and_made_printable),
		T(test_not_listed_client_is_served),
		T(test_data_rejected_with_5xx_or_4xx_ends_the_transaction),
		T(test_quoted_form_of_blocked_address_gets_553),
		T(test_rcpt_to_other_domain_gets_550),
		T(test_rcpt_beyond_max_recipients_gets_452),
		T(test_rcpt_beyond_max_recipients_does_not_close_session),
		T(test_duplicate_rcpt_is_accepted_once),
		T(test_postmaster_without_domain_accepted),
		T(test_source_route_is_stripped_and_remote_domain_refused),
		T(test_percent_hack_stays_local),
		T(test_quoted_local_part),
		T(test_utf8_address_needs_smtputf8),
		T(test_smtputf8_with_value_gets_555),
		T(test_rcpt_parameters_get_555),
		T(test_rcpt_dsn_parameters_are_kept),
		T(test_auth_before_tls_gets_538),
		T(test_auth_plain_advertised_only_over_tls),
		T(test_auth_plain_initial_response_gets_235),
		T(test_auth_plain_continuation_gets_334_then_235),
		T(test_auth_cancel_gets_501),
		T(test_auth_bad_password_gets_535),
		T(test_auth_unknown_user_gets_535),
		T(test_auth_other_mechanism_gets_504),
		T(test_submission_port_requires_auth_before_mail),
		T(test_authenticated_sender_must_be_own_domain),
		T(test_authenticated_rcpt_to_remote_domain_is_relayed),
		T(test_unauthenticated_rcpt_to_remote_domain_gets_550),
		T(test_mail_dsn_parameters_are_kept),
		T(test_bad_recipient_syntax_gets_501),
		T(test_address_too_long_gets_501),
		T(test_mail_from_local_domain_without_auth_gets_550),
		T(test_null_reverse_path_accepted),
		T(test_null_reverse_path_accepted_after_helo),
		T(test_mail_from_records_sender_in_transaction),
		T(test_space_after_colon_accepted),
		T(test_bad_sender_syntax_gets_501),
		T(test_size_parameter_over_limit_gets_552),
		T(test_bad_size_parameter_gets_501),
		T(test_body_parameter_values),
		T(test_unknown_mail_parameter_gets_555),
		T(test_mail_parameters_after_helo_get_555),
		T(test_data_commit_then_250_with_queue_id),
		T(test_second_transaction_in_one_session),
		T(test_dot_stuffed_data_stored_unstuffed),
		T(test_empty_message_accepted),
		T(test_eight_bit_and_nul_data_pass_through),
		T(test_bytes_after_end_of_data_are_the_next_command),
		T(test_feed_data_outside_data_consumes_nothing),
		T(test_command_lines_ignored_during_data),
		T(test_oversize_data_gets_552_even_with_small_declared_size),
		T(test_message_of_exactly_max_size_accepted),
		T(test_bare_lf_in_data_refused_with_554),
		T(test_bare_cr_in_data_refused_with_554),
		T(test_smuggled_transaction_is_not_executed),
		T(test_storage_failure_answers_data_with_451),
		T(test_storage_failure_at_data_ends_the_transaction),
		T(test_commit_failure_gives_451),
		T(test_commit_failure_on_full_disk_gives_452_4_3_1),
		T(test_storage_full_at_begin_answers_data_with_452_4_3_1),
		T(test_two_domains_give_two_servers),
		T(test_one_domain_gives_one_server),
		T(test_case_insensitive_domain),
		T(test_trace_headers_for_single_recipient),
		T(test_trace_headers_over_tls_name_esmtps_and_cipher),
		T(test_trace_headers_for_several_recipients_omit_for),
		T(test_trace_headers_for_bounce_after_helo),
		T(test_trace_headers_for_smtputf8_transaction),
		T(test_starttls_resets_state_and_requires_ehlo),
		T(test_starttls_twice_gets_503),
		T(test_starttls_without_certificate_gets_454),
		T(test_starttls_during_transaction_gets_503),
		T(test_no_tls_description_without_tls),
		T(test_unknown_command_gets_500),
		T(test_nul_in_command_gets_500),
		T(test_line_too_long_gets_500),
		T(test_error_limit_closes_session),
		T(test_vrfy_gets_252),
		T(test_expn_gets_502),
		T(test_help_gets_214),
		T(test_noop_gets_250_with_or_without_argument),
		T(test_rset_clears_transaction),
		T(test_rset_before_ehlo_does_not_skip_ehlo),
		T(test_quit_gets_221_and_closes),
		T(test_timeout_gets_421_and_closes),
		T(test_shutdown_gets_421),
		T(test_commands_are_case_insensitive),
		T(test_pipelined_commands_each_get_a_reply),
	};

	return cmocka_run_group_tests(tests, load_config, free_config);
}
