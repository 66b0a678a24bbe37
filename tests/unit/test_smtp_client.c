/* test_smtp_client.c: the SMTP client core (smtp/client.c) driven reply line by reply line as
 * the outbound glue drives it; every test checks the exact commands sent and each recipient's
 * final result (status, code, RFC 3463 enhanced status, text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/client.h"
#include "strbuf.h"

#define HELO_NAME "mx.example.org"
#define SENDER "owner@example.org"
#define ALICE "alice@example.net"
#define BOB "bob@example.net"
#define MESSAGE_SIZE 1000ULL

/* "\0owner@example.org\0secret" in base64 (RFC 4616 2). */
#define AUTH_PLAIN_LINE "AUTH PLAIN AG93bmVyQGV4YW1wbGUub3JnAHNlY3JldA==\r\n"

/* One outbound connection: the client, the commands of the last call, the last action. */
struct conn {
	struct smtp_client_params params;
	const char *recipients[4];
	struct smtp_client *c;
	struct strbuf out;
	enum smtp_client_action action;
};

static int setup(void **state)
{
	struct conn *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->recipients[0] = ALICE;
	t->recipients[1] = BOB;
	t->params = (struct smtp_client_params){
		.helo_name = HELO_NAME,
		.sender = SENDER,
		.recipients = t->recipients,
		.recipient_count = 2,
		.message_size = MESSAGE_SIZE,
		.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
	};
	strbuf_init(&t->out);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct conn *t = *state;

	smtp_client_free(t->c);
	strbuf_free(&t->out);
	free(t);
	return 0;
}

/* Creates the client from t->params (tests adjust them first) as if connected to mx1. */
static void start(struct conn *t)
{
	t->c = smtp_client_new(&t->params);
	smtp_client_set_remote_host(t->c, "mx1.example.net");
}

static const char *sent(const struct conn *t)
{
	return t->out.data ? t->out.data : "";
}

/* One reply line from the remote. */
static void reply(struct conn *t, const char *line)
{
	strbuf_reset(&t->out);
	t->action = smtp_client_feed_line(t->c, line, strlen(line), &t->out);
}

/* One reply line, then exactly these commands and this action. */
static void expect(struct conn *t, const char *line, const char *commands,
	enum smtp_client_action action)
{
	reply(t, line);
	if (strcmp(sent(t), commands) != 0)
		fail_msg("after \"%s\" sent \"%s\", want \"%s\"", line, sent(t), commands);
	assert_int_equal(t->action, action);
}

static void assert_result(const struct conn *t, size_t i, enum smtp_client_status status,
	int code, const char *enhanced, const char *text)
{
	const struct smtp_client_result *r = smtp_client_result(t->c, i);

	assert_non_null(r);
	assert_int_equal(r->status, status);
	assert_int_equal(r->code, code);
	assert_string_equal(r->enhanced, enhanced);
	if (text)
		assert_string_equal(r->text, text);
}

static void assert_finished(const struct conn *t)
{
	assert_true(smtp_client_finished(t->c));
	for (size_t i = 0; i < smtp_client_recipient_count(t->c); i++)
		assert_int_not_equal(smtp_client_result(t->c, i)->status, SMTP_CLIENT_PENDING);
}

/* The greeting and a one-line EHLO reply with exactly these keywords (NULL: none). */
static void greet(struct conn *t, const char *const *keywords)
{
	char line[256];

	expect(t, "220 mx1.example.net ESMTP", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	if (!keywords || !keywords[0]) {
		reply(t, "250 mx1.example.net");
		return;
	}
	reply(t, "250-mx1.example.net Hello");
	for (size_t i = 0; keywords[i]; i++) {
		snprintf(line, sizeof(line), "250%c%s", keywords[i + 1] ? '-' : ' ', keywords[i]);
		reply(t, line);
	}
}

#define KEYWORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* 354 → body → final reply. */
static void send_body_and_finish(struct conn *t, const char *final_reply, const char *commands)
{
	expect(t, "354 End data with <CR><LF>.<CR><LF>", "", SMTP_CLIENT_ACTION_SEND_BODY);
	smtp_client_body_sent(t->c);
	expect(t, final_reply, commands, SMTP_CLIENT_ACTION_DONE);
}

/* ---- the whole transaction ---- */

static void test_happy_path_without_pipelining_delivers_all(void **state)
{
	struct conn *t = *state;

	start(t);
	assert_false(smtp_client_finished(t->c));
	greet(t, KEYWORDS("8BITMIME"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER ">\r\n");
	expect(t, "250 2.1.0 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 2.1.5 Ok", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 2.1.5 Ok", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	assert_false(smtp_client_finished(t->c));
	send_body_and_finish(t, "250 2.0.0 Ok: queued as 4ABC", "QUIT\r\n");
	assert_finished(t);
	for (size_t i = 0; i < 2; i++) {
		assert_result(t, i, SMTP_CLIENT_DELIVERED, 250, "2.0.0",
			"250 2.0.0 Ok: queued as 4ABC");
		assert_string_equal(smtp_client_result(t->c, i)->remote_host, "mx1.example.net");
		assert_false(smtp_client_result(t->c, i)->host_failure);
	}
}

static void test_pipelining_sends_mail_rcpts_and_data_in_one_batch(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING", "SIZE 10240000"));
	/* RFC 2920 3.1: DATA last in the group. */
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER "> SIZE=1000\r\n"
		"RCPT TO:<" ALICE ">\r\n"
		"RCPT TO:<" BOB ">\r\n"
		"DATA\r\n");
	expect(t, "250 2.1.0 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 2.1.5 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 2.1.5 Ok", "", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "250 2.0.0 Ok", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 2.0.0 Ok");
	assert_result(t, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 2.0.0 Ok");
}

static void test_pipelined_replies_are_matched_in_order(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	expect(t, "250 2.1.0 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 <alice@example.net>: no such user", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 2.1.5 Ok", "", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "250 2.0.0 Ok", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
		"550 5.1.1 <alice@example.net>: no such user");
	assert_result(t, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 2.0.0 Ok");
}

static void test_mixed_rcpt_results_deliver_one_and_bounce_the_other(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 User unknown", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "250 Ok: queued", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 User unknown");
	assert_result(t, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 Ok: queued");
}

static void test_452_to_rcpt_is_tempfail_for_that_recipient(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	/* RFC 5321 4.5.3.1.10: too many recipients; the queue retries bob later. */
	expect(t, "452 4.5.3 Too many recipients", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "250 Ok", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 Ok");
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 452, "4.5.3", "452 4.5.3 Too many recipients");
}

static void test_all_rcpts_refused_sends_no_data_and_no_body(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "450 4.2.0 Greylisted", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 Unknown");
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 450, "4.2.0", "450 4.2.0 Greylisted");
}

/* RFC 2920 3.1: "if the DATA command was accepted the client SMTP should send a single dot". */
static void test_all_rcpts_refused_pipelined_354_gets_a_single_dot_not_the_body(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "354 Go ahead", ".\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "554 5.5.1 No valid recipients", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 Unknown");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 Unknown");
}

/* RFC 2920 3.1: "If the DATA command was properly rejected the client SMTP can just issue
 * RSET" (we end the session instead). */
static void test_all_rcpts_refused_pipelined_data_refusal_quits(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "551 5.1.6 Moved", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "503 5.5.1 No valid recipients", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 Unknown");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 551, "5.1.6", "551 5.1.6 Moved");
}

static void test_451_after_data_is_tempfail_for_accepted_recipients(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "451 4.3.0 Local error", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", NULL);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "451 4.3.0 Local error");
}

static void test_554_after_data_is_permfail_for_accepted_recipients(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "554 5.7.1 Spam", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 554, "5.7.1", "554 5.7.1 Spam");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 554, "5.7.1", "554 5.7.1 Spam");
}

static void test_data_refused_is_the_result_for_accepted_recipients(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "452 4.3.1 Insufficient storage", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 452, "4.3.1", NULL);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 452, "4.3.1", NULL);
}

static void test_mail_from_refused_fails_every_recipient(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "553 5.7.1 Sender rejected", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 553, "5.7.1", "553 5.7.1 Sender rejected");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 553, "5.7.1", "553 5.7.1 Sender rejected");
}

/* RFC 2920 3.1: every reply of the batch is read; the MAIL refusal stays the result. */
static void test_mail_from_refused_pipelined_reads_the_remaining_replies(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	expect(t, "451 4.3.0 Try later", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "503 5.5.1 Need MAIL", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "503 5.5.1 Need MAIL", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "503 5.5.1 Need RCPT", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "451 4.3.0 Try later");
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 451, "4.3.0", "451 4.3.0 Try later");
}

static void test_null_sender_is_sent_as_empty_path(void **state)
{
	struct conn *t = *state;

	t->params.sender = "";
	start(t);
	greet(t, NULL);
	assert_string_equal(sent(t), "MAIL FROM:<>\r\n");
}

/* ---- greeting ---- */

static void test_greeting_554_is_permfail_and_quits(void **state)
{
	struct conn *t = *state;

	start(t);
	/* RFC 5321 3.1: after a 554 greeting the client sends QUIT. */
	expect(t, "554 5.7.1 No SMTP service here", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_finished(t);
	for (size_t i = 0; i < 2; i++) {
		assert_result(t, i, SMTP_CLIENT_PERMFAIL, 554, "5.7.1",
			"554 5.7.1 No SMTP service here");
		assert_true(smtp_client_result(t->c, i)->host_failure);
	}
}

static void test_greeting_421_is_tempfail_without_quit(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "421 mx1.example.net busy", "", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 421, "4.0.0", "421 mx1.example.net busy");
	assert_true(smtp_client_result(t->c, 0)->host_failure);
}

/* ---- EHLO ---- */

static void test_ehlo_5xx_falls_back_to_helo(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "220 old.example.net SMTP", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "502 Command not implemented", "HELO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	/* No extensions after HELO: no SIZE=, one command at a time. */
	expect(t, "250 old.example.net", "MAIL FROM:<" SENDER ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	assert_false(smtp_client_remote_supports_dsn(t->c));
}

static void test_ehlo_4xx_is_tempfail(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "220 mx1.example.net ESMTP", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "450 4.7.1 Slow down", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 450, "4.7.1", "450 4.7.1 Slow down");
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 450, "4.7.1", "450 4.7.1 Slow down");
}

static void test_helo_refused_fails_every_recipient(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "220 old.example.net SMTP", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "500 What?", "HELO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 Go away", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.0.0", "550 Go away");
}

static void test_many_line_ehlo_reply_is_parsed_to_the_last_keyword(void **state)
{
	struct conn *t = *state;
	char line[64];

	start(t);
	expect(t, "220 mx1.example.net ESMTP", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250-mx1.example.net Hello mx.example.org", "", SMTP_CLIENT_ACTION_NONE);
	for (int i = 0; i < 60; i++) {
		snprintf(line, sizeof(line), "250-X-VENDOR-EXTENSION-%d some params", i);
		expect(t, line, "", SMTP_CLIENT_ACTION_NONE);
	}
	expect(t, "250-pipelining", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250-DSN", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 size 2000",
		"MAIL FROM:<" SENDER "> SIZE=1000\r\nRCPT TO:<" ALICE ">\r\nRCPT TO:<" BOB ">\r\n"
		"DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	assert_true(smtp_client_remote_supports_dsn(t->c));
}

/* ---- STARTTLS (RFC 3207) ---- */

static void test_starttls_offered_gives_starttls_action_then_ehlo_again(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("STARTTLS", "PIPELINING", "SIZE 100"));
	/* The SIZE 100 of the clear-text EHLO is forgotten after TLS (RFC 3207 4.2). */
	assert_string_equal(sent(t), "STARTTLS\r\n");
	expect(t, "220 2.0.0 Ready to start TLS", "", SMTP_CLIENT_ACTION_STARTTLS);
	assert_false(smtp_client_tls_active(t->c));
	strbuf_reset(&t->out);
	smtp_client_tls_started(t->c, &t->out);
	assert_string_equal(sent(t), "EHLO " HELO_NAME "\r\n");
	assert_true(smtp_client_tls_active(t->c));
	/* STARTTLS offered again over TLS is not taken up again. */
	expect(t, "250-mx1.example.net", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 STARTTLS", "MAIL FROM:<" SENDER ">\r\n", SMTP_CLIENT_ACTION_NONE);
}

static void test_reply_between_starttls_220_and_handshake_is_refused(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("STARTTLS"));
	expect(t, "220 2.0.0 Ready", "", SMTP_CLIENT_ACTION_STARTTLS);
	/* RFC 3207 5: a reply injected in clear before the handshake must not be used. */
	expect(t, "250 STARTTLS", "", SMTP_CLIENT_ACTION_DONE);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
	assert_false(smtp_client_tls_active(t->c));
}

static void test_starttls_required_but_not_offered_is_tempfail(void **state)
{
	struct conn *t = *state;

	t->params.tls = SMTP_CLIENT_TLS_REQUIRED;
	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	assert_string_equal(sent(t), "QUIT\r\n");
	assert_int_equal(t->action, SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.7.4",
		"TLS is required but the remote does not offer STARTTLS");
	assert_true(smtp_client_result(t->c, 1)->host_failure);
}

static void test_starttls_refused_with_required_tls_is_tempfail(void **state)
{
	struct conn *t = *state;

	t->params.tls = SMTP_CLIENT_TLS_REQUIRED;
	start(t);
	greet(t, KEYWORDS("STARTTLS"));
	expect(t, "454 4.7.0 TLS not available", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.7.4",
		"TLS is required but STARTTLS was refused: 454 4.7.0 TLS not available");
}

static void test_starttls_refused_with_opportunistic_tls_continues_in_clear(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("STARTTLS", "SIZE 5000"));
	expect(t, "454 4.7.0 TLS not available", "MAIL FROM:<" SENDER "> SIZE=1000\r\n",
		SMTP_CLIENT_ACTION_NONE);
	assert_false(smtp_client_tls_active(t->c));
}

static void test_tls_never_does_not_send_starttls(void **state)
{
	struct conn *t = *state;

	t->params.tls = SMTP_CLIENT_TLS_NEVER;
	start(t);
	greet(t, KEYWORDS("STARTTLS"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER ">\r\n");
}

static void test_implicit_tls_does_not_send_starttls(void **state)
{
	struct conn *t = *state;

	t->params.tls = SMTP_CLIENT_TLS_REQUIRED;
	t->params.tls_active = true;
	start(t);
	greet(t, KEYWORDS("STARTTLS"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER ">\r\n");
}

/* ---- AUTH (RFC 4954, RFC 4616) ---- */

static void use_credentials(struct conn *t)
{
	t->params.auth_user = SENDER;
	t->params.auth_password = "secret";
}

/* Greeting, EHLO with STARTTLS and AUTH PLAIN, TLS, EHLO again. */
static void greet_over_starttls(struct conn *t, const char *auth_keyword)
{
	greet(t, KEYWORDS("STARTTLS", auth_keyword));
	assert_string_equal(sent(t), "STARTTLS\r\n");
	expect(t, "220 Go ahead", "", SMTP_CLIENT_ACTION_STARTTLS);
	strbuf_reset(&t->out);
	smtp_client_tls_started(t->c, &t->out);
	expect(t, "250-smarthost.example.net", "", SMTP_CLIENT_ACTION_NONE);
	reply(t, "250-PIPELINING");
	reply(t, auth_keyword[0] ? "250 AUTH LOGIN PLAIN" : "250 8BITMIME");
}

static void test_auth_plain_is_sent_only_after_tls(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	/* AUTH offered in clear: the credentials wait for TLS. */
	greet(t, KEYWORDS("STARTTLS", "AUTH PLAIN LOGIN"));
	assert_string_equal(sent(t), "STARTTLS\r\n");
	expect(t, "220 Go ahead", "", SMTP_CLIENT_ACTION_STARTTLS);
	strbuf_reset(&t->out);
	smtp_client_tls_started(t->c, &t->out);
	expect(t, "250-smarthost.example.net", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 AUTH LOGIN PLAIN", AUTH_PLAIN_LINE, SMTP_CLIENT_ACTION_NONE);
	expect(t, "235 2.7.0 Authentication successful", "MAIL FROM:<" SENDER ">\r\n",
		SMTP_CLIENT_ACTION_NONE);
}

static void test_auth_without_tls_never_sends_credentials(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet(t, KEYWORDS("AUTH PLAIN"));
	assert_string_equal(sent(t), "QUIT\r\n");
	assert_int_equal(t->action, SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.7.11", NULL);
	assert_non_null(strstr(smtp_client_result(t->c, 0)->text, "not sending them in clear"));
}

static void test_auth_without_tls_after_refused_starttls_never_sends_credentials(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet(t, KEYWORDS("STARTTLS", "AUTH PLAIN"));
	expect(t, "454 4.7.0 TLS not available", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 0, "4.7.11", NULL);
}

static void test_auth_over_implicit_tls_accepts_old_auth_equals_form(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	t->params.tls_active = true;
	start(t);
	greet(t, KEYWORDS("AUTH=LOGIN PLAIN"));
	assert_string_equal(sent(t), AUTH_PLAIN_LINE);
}

/* A wrong smarthost password is the operator's problem: the mail waits in the queue. */
static void test_auth_failure_535_is_tempfail_for_all(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet_over_starttls(t, "AUTH PLAIN");
	assert_string_equal(sent(t), AUTH_PLAIN_LINE);
	expect(t, "535 5.7.8 Authentication credentials invalid", "QUIT\r\n",
		SMTP_CLIENT_ACTION_DONE);
	for (size_t i = 0; i < 2; i++)
		assert_result(t, i, SMTP_CLIENT_TEMPFAIL, 0, "4.7.8",
			"the smarthost refused the login: 535 5.7.8 Authentication credentials invalid");
}

static void test_auth_failure_454_is_tempfail_for_all(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet_over_starttls(t, "AUTH PLAIN");
	expect(t, "454 4.7.0 Temporary authentication failure", "QUIT\r\n",
		SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 454, "4.7.0", NULL);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 454, "4.7.0", NULL);
}

static void test_auth_challenge_after_initial_response_is_cancelled(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet_over_starttls(t, "AUTH PLAIN");
	expect(t, "334 ", "*\r\nQUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.7.0", NULL);
}

static void test_auth_plain_not_offered_is_tempfail(void **state)
{
	struct conn *t = *state;

	use_credentials(t);
	start(t);
	greet_over_starttls(t, "");
	assert_string_equal(sent(t), "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.7.0",
		"credentials are configured but the remote does not offer AUTH PLAIN");
}

/* ---- SIZE, 8BITMIME, SMTPUTF8 ---- */

static void test_size_over_remote_limit_is_permfail_5_3_4_before_mail(void **state)
{
	struct conn *t = *state;

	t->params.message_size = 20000;
	start(t);
	greet(t, KEYWORDS("PIPELINING", "SIZE 10000"));
	assert_string_equal(sent(t), "QUIT\r\n");
	assert_int_equal(t->action, SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 0, "5.3.4",
		"message size 20000 exceeds the remote's fixed maximum of 10000 (RFC 1870)");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 0, "5.3.4", NULL);
}

static void test_size_without_limit_sends_size_parameter(void **state)
{
	struct conn *t = *state;

	t->params.message_size = 99999999;
	start(t);
	/* RFC 1870 4: SIZE without a number (or 0) announces no fixed maximum. */
	greet(t, KEYWORDS("SIZE"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER "> SIZE=99999999\r\n");
}

static void test_8bit_body_gets_body_8bitmime_when_offered(void **state)
{
	struct conn *t = *state;

	t->params.message_8bit = true;
	start(t);
	greet(t, KEYWORDS("8BITMIME"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER "> BODY=8BITMIME\r\n");
}

/* Our documented choice (RFC 6152 3 allows it): send as it is, no conversion. */
static void test_8bit_body_is_sent_as_is_without_8bitmime(void **state)
{
	struct conn *t = *state;

	t->params.message_8bit = true;
	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER ">\r\nRCPT TO:<" ALICE ">\r\nRCPT TO:<" BOB ">\r\nDATA\r\n");
}

static void test_smtputf8_needed_not_offered_is_permfail_5_6_7(void **state)
{
	struct conn *t = *state;

	t->params.needs_smtputf8 = true;
	start(t);
	greet(t, KEYWORDS("8BITMIME", "PIPELINING"));
	assert_string_equal(sent(t), "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 0, "5.6.7", NULL);
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 0, "5.6.7", NULL);
}

static void test_smtputf8_needed_and_offered_is_sent(void **state)
{
	struct conn *t = *state;

	t->params.sender = "j\xc3\xb6rg@example.org";
	t->params.message_8bit = true;
	start(t);
	greet(t, KEYWORDS("8BITMIME", "SMTPUTF8"));
	assert_string_equal(sent(t),
		"MAIL FROM:<j\xc3\xb6rg@example.org> BODY=8BITMIME SMTPUTF8\r\n");
}

static void test_utf8_recipient_without_smtputf8_fails_alone(void **state)
{
	struct conn *t = *state;

	t->recipients[1] = "b\xc3\xb6" "b@example.net";
	start(t);
	greet(t, NULL);
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER ">\r\n");
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "DATA\r\n", SMTP_CLIENT_ACTION_NONE);
	send_body_and_finish(t, "250 Ok", "QUIT\r\n");
	assert_result(t, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", NULL);
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 0, "5.6.7", NULL);
}

/* ---- DSN (RFC 3461) ---- */

static void use_dsn_parameters(struct conn *t)
{
	static const char *const notify[] = {"SUCCESS,FAILURE", NULL};
	static const char *const orcpt[] = {"rfc822;alice+2Bx@example.net", NULL};

	t->params.notify = notify;
	t->params.orcpt = orcpt;
	t->params.ret = "HDRS";
	t->params.envid = "QX1234";
}

static void test_dsn_parameters_only_when_remote_offers_dsn(void **state)
{
	struct conn *t = *state;

	use_dsn_parameters(t);
	start(t);
	greet(t, KEYWORDS("PIPELINING", "8BITMIME"));
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER ">\r\nRCPT TO:<" ALICE ">\r\nRCPT TO:<" BOB ">\r\nDATA\r\n");
	assert_false(smtp_client_remote_supports_dsn(t->c));
}

static void test_dsn_parameters_sent_when_remote_offers_dsn(void **state)
{
	struct conn *t = *state;

	use_dsn_parameters(t);
	start(t);
	greet(t, KEYWORDS("PIPELINING", "DSN"));
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER "> RET=HDRS ENVID=QX1234\r\n"
		"RCPT TO:<" ALICE "> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+2Bx@example.net\r\n"
		"RCPT TO:<" BOB ">\r\n"
		"DATA\r\n");
	assert_true(smtp_client_remote_supports_dsn(t->c));
}

static void test_malformed_dsn_parameters_are_left_out(void **state)
{
	struct conn *t = *state;
	static const char *const notify[] = {"SUCCESS,NEVER", "DELAY,"};
	static const char *const orcpt[] = {"rfc822;a b@example.net", "alice@example.net"};

	t->params.notify = notify;
	t->params.orcpt = orcpt;
	t->params.ret = "ALL";
	t->params.envid = "a=b";
	start(t);
	greet(t, KEYWORDS("PIPELINING", "DSN"));
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER ">\r\nRCPT TO:<" ALICE ">\r\nRCPT TO:<" BOB ">\r\nDATA\r\n");
}

/* ---- reply parsing ---- */

static void test_multi_line_reply_waits_for_its_last_line(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550-5.1.1 The email account that you tried to reach does not exist.", "",
		SMTP_CLIENT_ACTION_NONE);
	assert_int_equal(smtp_client_result(t->c, 0)->status, SMTP_CLIENT_PENDING);
	expect(t, "550-5.1.1 Please try double-checking the recipient's email", "",
		SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 address.", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	/* The lines joined, the repeated enhanced code dropped. */
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1",
		"550 5.1.1 The email account that you tried to reach does not exist. "
		"Please try double-checking the recipient's email address.");
}

static void test_enhanced_status_is_derived_when_the_server_has_none(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 No such user here", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "451", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	/* RFC 3463 3.1: X.0.0 other undefined status. */
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.0.0", "550 No such user here");
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 451, "4.0.0", "451");
}

static void test_enhanced_status_of_another_class_is_not_taken(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 4.1.1 Odd", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1234 Odd", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.0.0", "550 4.1.1 Odd");
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 550, "5.0.0", "550 5.1.1234 Odd");
}

static void test_reply_text_is_made_printable_ascii(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "550 5.1.1 b\xc3\xb6" "se\tuser\x1b", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", "550 5.1.1 b??se user?");
}

static void test_unexpected_reply_code_is_tempfail(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "354 Go ahead", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", "unexpected reply: 354 Go ahead");
	assert_true(smtp_client_result(t->c, 0)->host_failure);
}

static void test_malformed_reply_is_tempfail_of_the_connection(void **state)
{
	static const char *const bad[] = {
		"hello", "25", "250x Ok", "199 Info", "611 Odd", "2a0 Ok", "260 Ok", "250_Ok",
	};

	/* A fresh connection for each line (the fixture's teardown frees the last). */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conn *t;
		teardown(state);
		setup(state);
		t = *state;
		start(t);
		expect(t, "220 mx1.example.net", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
		expect(t, bad[i], "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
		assert_finished(t);
		assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
		assert_true(smtp_client_result(t->c, 1)->host_failure);
	}
}

static void test_nul_in_reply_is_malformed(void **state)
{
	struct conn *t = *state;

	start(t);
	strbuf_reset(&t->out);
	t->action = smtp_client_feed_line(t->c, "220 a\0b", 7, &t->out);
	assert_int_equal(t->action, SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
}

static void test_reply_code_change_within_a_reply_is_malformed(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "220-mx1.example.net", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "250 Ok", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
}

static void test_overlong_reply_line_is_an_error(void **state)
{
	struct conn *t = *state;
	char line[SMTP_REPLY_LINE_MAX + 2];

	start(t);
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "220 ", 4);
	line[sizeof(line) - 1] = '\0';
	expect(t, line, "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
	assert_non_null(strstr(smtp_client_result(t->c, 0)->text, "too long"));
}

static void test_reply_line_at_the_limit_is_accepted(void **state)
{
	struct conn *t = *state;
	char line[SMTP_REPLY_LINE_MAX + 1];

	start(t);
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "220 ", 4);
	line[sizeof(line) - 1] = '\0';
	expect(t, line, "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
}

static void test_too_many_lines_in_one_reply_is_an_error(void **state)
{
	struct conn *t = *state;

	start(t);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		expect(t, "220-chatty", "", SMTP_CLIENT_ACTION_NONE);
	expect(t, "220 done", "QUIT\r\n", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
}

static void test_trailing_cr_is_ignored(void **state)
{
	struct conn *t = *state;

	start(t);
	expect(t, "220 mx1.example.net\r", "EHLO " HELO_NAME "\r\n", SMTP_CLIENT_ACTION_NONE);
}

/* ---- connection-level events ---- */

static void test_connection_failed_mid_transaction_tempfails_pending(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	smtp_client_connection_failed(t->c, "read timeout after 300 s");
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", NULL);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", "read timeout after 300 s");
	assert_true(smtp_client_result(t->c, 1)->host_failure);
	/* Nothing more happens after it. */
	expect(t, "250 Ok", "", SMTP_CLIENT_ACTION_DONE);
}

static void test_connection_failed_before_greeting_is_no_answer(void **state)
{
	struct conn *t = *state;

	start(t);
	smtp_client_connection_failed(t->c, "connect: Connection refused");
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.4.1", "connect: Connection refused");
	assert_string_equal(smtp_client_result(t->c, 0)->remote_host, "mx1.example.net");
}

static void test_connection_failed_after_delivery_keeps_delivered(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	send_body_and_finish(t, "250 Ok", "QUIT\r\n");
	smtp_client_connection_failed(t->c, "connection reset");
	assert_result(t, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 Ok");
	assert_result(t, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", "250 Ok");
}

static void test_connection_lost_after_body_is_tempfail(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	expect(t, "354 Go", "", SMTP_CLIENT_ACTION_SEND_BODY);
	smtp_client_body_sent(t->c);
	smtp_client_connection_failed(t->c, "connection closed by remote");
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.4.2", "connection closed by remote");
}

static void test_421_mid_transaction_tempfails_without_quit(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, NULL);
	expect(t, "250 Ok", "RCPT TO:<" ALICE ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "550 5.1.1 Unknown", "RCPT TO:<" BOB ">\r\n", SMTP_CLIENT_ACTION_NONE);
	expect(t, "421 4.4.2 Timeout, closing", "", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 550, "5.1.1", NULL);
	assert_result(t, 1, SMTP_CLIENT_TEMPFAIL, 421, "4.4.2", "421 4.4.2 Timeout, closing");
}

static void test_reply_while_the_body_is_sent_is_an_error_without_quit(void **state)
{
	struct conn *t = *state;

	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	expect(t, "354 Go", "", SMTP_CLIENT_ACTION_SEND_BODY);
	/* QUIT now would become part of the message. */
	expect(t, "554 5.0.0 Nope", "", SMTP_CLIENT_ACTION_DONE);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.5.0", NULL);
}

/* ---- what the client is given ---- */

static void test_bad_recipient_address_is_permfail_without_being_sent(void **state)
{
	struct conn *t = *state;

	t->recipients[0] = "alice@example.net>\r\nRCPT TO:<evil@example.com";
	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	assert_string_equal(sent(t), "MAIL FROM:<" SENDER ">\r\nRCPT TO:<" BOB ">\r\nDATA\r\n");
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 0, "5.1.3", NULL);
	reply(t, "250 Ok");
	reply(t, "250 Ok");
	send_body_and_finish(t, "250 Ok", "QUIT\r\n");
	assert_result(t, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", NULL);
}

static void test_quoted_local_part_with_space_is_usable(void **state)
{
	struct conn *t = *state;

	t->recipients[0] = "\"john doe\"@example.net";
	start(t);
	greet(t, KEYWORDS("PIPELINING"));
	assert_string_equal(sent(t),
		"MAIL FROM:<" SENDER ">\r\nRCPT TO:<\"john doe\"@example.net>\r\n"
		"RCPT TO:<" BOB ">\r\nDATA\r\n");
}

static void test_no_usable_recipient_finishes_before_connecting(void **state)
{
	struct conn *t = *state;

	t->recipients[0] = "a b@example.net";
	t->recipients[1] = "";
	start(t);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 0, "5.1.3", NULL);
	assert_result(t, 1, SMTP_CLIENT_PERMFAIL, 0, "5.1.3", NULL);
}

static void test_unusable_helo_name_is_tempfail_before_connecting(void **state)
{
	struct conn *t = *state;

	t->params.helo_name = "mx example";
	start(t);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_TEMPFAIL, 0, "4.3.5", NULL);
}

static void test_bad_sender_address_is_permfail_5_1_7(void **state)
{
	struct conn *t = *state;

	t->params.sender = "owner@example.org> SIZE=1";
	start(t);
	assert_finished(t);
	assert_result(t, 0, SMTP_CLIENT_PERMFAIL, 0, "5.1.7", NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_happy_path_without_pipelining_delivers_all),
		T(test_pipelining_sends_mail_rcpts_and_data_in_one_batch),
		T(test_pipelined_replies_are_matched_in_order),
		T(test_mixed_rcpt_results_deliver_one_and_bounce_the_other),
		T(test_452_to_rcpt_is_tempfail_for_that_recipient),
		T(test_all_rcpts_refused_sends_no_data_and_no_body),
		T(test_all_rcpts_refused_pipelined_354_gets_a_single_dot_not_the_body),
		T(test_all_rcpts_refused_pipelined_data_refusal_quits),
		T(test_451_after_data_is_tempfail_for_accepted_recipients),
		T(test_554_after_data_is_permfail_for_accepted_recipients),
		T(test_data_refused_is_the_result_for_accepted_recipients),
		T(test_mail_from_refused_fails_every_recipient),
		T(test_mail_from_refused_pipelined_reads_the_remaining_replies),
		T(test_null_sender_is_sent_as_empty_path),
		T(test_greeting_554_is_permfail_and_quits),
		T(test_greeting_421_is_tempfail_without_quit),
		T(test_ehlo_5xx_falls_back_to_helo),
		T(test_ehlo_4xx_is_tempfail),
		T(test_helo_refused_fails_every_recipient),
		T(test_many_line_ehlo_reply_is_parsed_to_the_last_keyword),
		T(test_starttls_offered_gives_starttls_action_then_ehlo_again),
		T(test_reply_between_starttls_220_and_handshake_is_refused),
		T(test_starttls_required_but_not_offered_is_tempfail),
		T(test_starttls_refused_with_required_tls_is_tempfail),
		T(test_starttls_refused_with_opportunistic_tls_continues_in_clear),
		T(test_tls_never_does_not_send_starttls),
		T(test_implicit_tls_does_not_send_starttls),
		T(test_auth_plain_is_sent_only_after_tls),
		T(test_auth_without_tls_never_sends_credentials),
		T(test_auth_without_tls_after_refused_starttls_never_sends_credentials),
		T(test_auth_over_implicit_tls_accepts_old_auth_equals_form),
		T(test_auth_failure_535_is_tempfail_for_all),
		T(test_auth_failure_454_is_tempfail_for_all),
		T(test_auth_challenge_after_initial_response_is_cancelled),
		T(test_auth_plain_not_offered_is_tempfail),
		T(test_size_over_remote_limit_is_permfail_5_3_4_before_mail),
		T(test_size_without_limit_sends_size_parameter),
		T(test_8bit_body_gets_body_8bitmime_when_offered),
		T(test_8bit_body_is_sent_as_is_without_8bitmime),
		T(test_smtputf8_needed_not_offered_is_permfail_5_6_7),
		T(test_smtputf8_needed_and_offered_is_sent),
		T(test_utf8_recipient_without_smtputf8_fails_alone),
		T(test_dsn_parameters_only_when_remote_offers_dsn),
		T(test_dsn_parameters_sent_when_remote_offers_dsn),
		T(test_malformed_dsn_parameters_are_left_out),
		T(test_multi_line_reply_waits_for_its_last_line),
		T(test_enhanced_status_is_derived_when_the_server_has_none),
		T(test_enhanced_status_of_another_class_is_not_taken),
		T(test_reply_text_is_made_printable_ascii),
		T(test_unexpected_reply_code_is_tempfail),
		T(test_malformed_reply_is_tempfail_of_the_connection),
		T(test_nul_in_reply_is_malformed),
		T(test_reply_code_change_within_a_reply_is_malformed),
		T(test_overlong_reply_line_is_an_error),
		T(test_reply_line_at_the_limit_is_accepted),
		T(test_too_many_lines_in_one_reply_is_an_error),
		T(test_trailing_cr_is_ignored),
		T(test_connection_failed_mid_transaction_tempfails_pending),
		T(test_connection_failed_before_greeting_is_no_answer),
		T(test_connection_failed_after_delivery_keeps_delivered),
		T(test_connection_lost_after_body_is_tempfail),
		T(test_421_mid_transaction_tempfails_without_quit),
		T(test_reply_while_the_body_is_sent_is_an_error_without_quit),
		T(test_bad_recipient_address_is_permfail_without_being_sent),
		T(test_quoted_local_part_with_space_is_usable),
		T(test_no_usable_recipient_finishes_before_connecting),
		T(test_unusable_helo_name_is_tempfail_before_connecting),
		T(test_bad_sender_address_is_permfail_5_1_7),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
