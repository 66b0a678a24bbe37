/* test_pop3_session.c: the POP3 protocol core (pop3/session.c), driven line by line against
 * an in-memory maildrop, as the glue would drive it (the dot-stuffing filter it hands RETR to
 * is tested in test_dotstuff.c). No files, no sockets. */
#include <setjmp.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "mail/dotstuff.h"
#include "pop3/session.h"
#include "strbuf.h"

/* ---- fixture: one Server, a three-message maildrop ---- */

static struct server_config test_server = {
	.domain = "example.org",
	.mailbox_password = "secret",
	.maildrop_path = "/var/mail/example.org",
};

static struct config test_config = {
	.hostname = "mx.example.org",
	.servers = &test_server,
	.server_count = 1,
};

#define TEST_MESSAGES 3

struct fixture {
	struct pop3_session *s;
	struct strbuf out;
	struct maildrop md;
	struct maildrop_message messages[TEST_MESSAGES];
};

static struct fixture *fixture_new(bool tls_active, bool stls_offered)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct pop3_session_params params = {
		.cfg = &test_config,
		.tls_active = tls_active,
		.stls_offered = stls_offered,
		.implementation = NULL,
	};
	static char *paths[TEST_MESSAGES] = {"/m/1", "/m/2", "/m/3"};

	assert_non_null(fx);
	for (size_t i = 0; i < TEST_MESSAGES; i++) {
		fx->messages[i].path = paths[i];
		fx->messages[i].size = 100 * (i + 1);
		snprintf(fx->messages[i].uidl, sizeof(fx->messages[i].uidl), "uid-%zu", i + 1);
	}
	fx->md.path = "/var/mail/example.org";
	fx->md.lock_fd = -1;
	fx->md.messages = fx->messages;
	fx->md.count = TEST_MESSAGES;
	strbuf_init(&fx->out);
	fx->s = pop3_session_new(&params);
	return fx;
}

static int setup_tls(void **state)
{
	*state = fixture_new(true, false);
	return 0;
}

static int setup_stls_port(void **state)
{
	*state = fixture_new(false, true);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	pop3_session_free(fx->s);
	strbuf_free(&fx->out);
	free(fx);
	return 0;
}

/* Feeds one line (without CRLF) and leaves only its reply in fx->out. */
static enum pop3_action feed(struct fixture *fx, const char *line)
{
	strbuf_reset(&fx->out);
	return pop3_session_feed_line(fx->s, line, strlen(line), &fx->out);
}

static const char *out(struct fixture *fx)
{
	return fx->out.data ? fx->out.data : "";
}

static void assert_starts_with(const char *text, const char *prefix)
{
	if (strncmp(text, prefix, strlen(prefix)) != 0)
		fail_msg("expected \"%s...\", got \"%s\"", prefix, text);
}

/* The glue's side of a login: password check, then the maildrop opened with status. */
static enum pop3_action complete_login(struct fixture *fx, enum pop3_action action,
	enum maildrop_open_status status)
{
	assert_int_equal(action, POP3_ACTION_CHECK_PASSWORD);
	strbuf_reset(&fx->out);
	action = pop3_session_auth_result(fx->s, pop3_session_verify_password(fx->s), &fx->out);
	if (action != POP3_ACTION_OPEN_MAILDROP)
		return action;
	assert_string_equal(pop3_session_maildrop_path(fx->s), "/var/mail/example.org");
	return pop3_session_maildrop_opened(fx->s, status,
		status == MAILDROP_OPEN_OK ? &fx->md : NULL, &fx->out);
}

/* LIST or UIDL without argument, as the glue completes it: the "+OK" comes with the action,
 * then the lines in parts of a small budget (so parts end everywhere) until the terminator. */
static enum pop3_action feed_listing(struct fixture *fx, const char *line)
{
	enum pop3_action action = feed(fx, line);

	assert_int_equal(action, POP3_ACTION_LISTING);
	while (action == POP3_ACTION_LISTING)
		action = pop3_session_listing_more(fx->s, &fx->out, 7);
	return action;
}

/* At QUIT (POP3_ACTION_COMMIT): the deletion list handed to the store is exactly want[n]. */
static void assert_deletions(struct fixture *fx, const size_t *want, size_t n)
{
	size_t count = 99;
	const size_t *got = pop3_session_deletions(fx->s, &count);

	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i], want[i]);
}

static void login(struct fixture *fx)
{
	assert_int_equal(feed(fx, "USER mailbox@example.org"), POP3_ACTION_NONE);
	assert_int_equal(complete_login(fx, feed(fx, "PASS secret"), MAILDROP_OPEN_OK),
		POP3_ACTION_NONE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
}

/* ---- greeting and CAPA ---- */

static void test_greeting_is_ok_without_apop_timestamp(void **state)
{
	struct fixture *fx = *state;

	pop3_session_greeting(fx->s, &fx->out);
	assert_string_equal(out(fx), "+OK mailpopbox ready\r\n");
}

static const char capa_with_login[] =
	"+OK Capability list follows\r\n"
	"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
	"USER\r\nSASL PLAIN\r\n"
	"IMPLEMENTATION mailpopbox\r\n.\r\n";

static void test_capa_in_authorization_lists_user_and_sasl(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "CAPA"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), capa_with_login);
}

static void test_capa_in_transaction_lists_same_capabilities(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "capa"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), capa_with_login);
}

static void test_capa_on_stls_port_before_tls_lists_stls_not_user(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "CAPA");
	assert_string_equal(out(fx),
		"+OK Capability list follows\r\n"
		"TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
		"STLS\r\n"
		"IMPLEMENTATION mailpopbox\r\n.\r\n");
}

static void test_capa_after_stls_lists_user_not_stls(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "STLS"), POP3_ACTION_STARTTLS);
	assert_string_equal(out(fx), "+OK Begin TLS negotiation\r\n");
	pop3_session_tls_started(fx->s);
	feed(fx, "CAPA");
	assert_string_equal(out(fx), capa_with_login);
}

static void test_capa_shows_configured_implementation(void **state)
{
	struct pop3_session_params params = {.cfg = &test_config, .tls_active = true,
		.implementation = "mailpopbox 0.1.0"};
	struct pop3_session *s = pop3_session_new(&params);
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	pop3_session_feed_line(s, "CAPA", 4, &sb);
	assert_non_null(strstr(sb.data, "\r\nIMPLEMENTATION mailpopbox 0.1.0\r\n.\r\n"));
	strbuf_free(&sb);
	pop3_session_free(s);
}

/* ---- USER/PASS ---- */

static void test_user_pass_success_opens_maildrop(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "USER mailbox@example.org"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK send PASS\r\n");
	assert_int_equal(feed(fx, "PASS secret"), POP3_ACTION_CHECK_PASSWORD);
	assert_string_equal(out(fx), "");
	assert_ptr_equal(pop3_session_auth_server(fx->s), &test_server);
	assert_true(pop3_session_verify_password(fx->s));
	assert_int_equal(pop3_session_auth_result(fx->s, true, &fx->out),
		POP3_ACTION_OPEN_MAILDROP);
	assert_string_equal(out(fx), "");
	assert_int_equal(pop3_session_maildrop_opened(fx->s, MAILDROP_OPEN_OK, &fx->md, &fx->out),
		POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK maildrop has 3 messages (600 octets)\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
	assert_string_equal(pop3_session_user(fx->s), "mailbox@example.org");
}

static void test_user_and_domain_are_case_insensitive(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "user MailBox@EXAMPLE.org");
	assert_int_equal(complete_login(fx, feed(fx, "pAsS secret"), MAILDROP_OPEN_OK),
		POP3_ACTION_NONE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
}

static void test_pass_wrong_password_gets_auth_error(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.org");
	assert_int_equal(complete_login(fx, feed(fx, "PASS Secret"), MAILDROP_OPEN_OK),
		POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_AUTHORIZATION);
}

static void test_pass_unknown_user_gets_same_auth_error(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	/* USER does not tell whether the name exists either. */
	assert_int_equal(feed(fx, "USER alice@example.org"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK send PASS\r\n");
	assert_int_equal(feed(fx, "PASS secret"), POP3_ACTION_CHECK_PASSWORD);
	assert_null(pop3_session_auth_server(fx->s));
	assert_false(pop3_session_verify_password(fx->s));
	pop3_session_auth_password(fx->s, &len);
	assert_int_equal(len, 6);
	/* Even a glue that wrongly says ok cannot log in a name that is not ours. */
	assert_int_equal(pop3_session_auth_result(fx->s, true, &fx->out), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
}

static void test_pass_other_domain_gets_auth_error(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.com");
	complete_login(fx, feed(fx, "PASS secret"), MAILDROP_OPEN_OK);
	assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
}

static void test_pass_without_user_is_refused(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "PASS secret"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR send USER first\r\n");
}

static void test_pass_needs_a_new_user_after_failure(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.org");
	complete_login(fx, feed(fx, "PASS wrong"), MAILDROP_OPEN_OK);
	assert_int_equal(feed(fx, "PASS secret"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR send USER first\r\n");
}

static void test_pass_keeps_spaces_in_password(void **state)
{
	struct fixture *fx = *state;
	const char *password;
	size_t len;

	feed(fx, "USER mailbox@example.org");
	assert_int_equal(feed(fx, "PASS  two words "), POP3_ACTION_CHECK_PASSWORD);
	password = pop3_session_auth_password(fx->s, &len);
	assert_int_equal(len, strlen(" two words "));
	assert_memory_equal(password, " two words ", len);
	pop3_session_auth_result(fx->s, false, &fx->out);
	/* The password is wiped once the check is done. */
	pop3_session_auth_password(fx->s, &len);
	assert_int_equal(len, 0);
}

static void test_pass_without_argument_gets_err(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.org");
	assert_int_equal(feed(fx, "PASS"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR missing argument\r\n");
	assert_int_equal(feed(fx, "PASS "), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR missing argument\r\n");
}

static void test_user_with_two_arguments_gets_err(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.org x");
	assert_string_equal(out(fx), "-ERR too many arguments\r\n");
}

static void test_user_with_long_domain_is_accepted(void **state)
{
	struct fixture *fx = *state;
	char line[300];

	/* Longer than RFC 2449's 40 octets: a long domain must still be able to log in. */
	snprintf(line, sizeof(line), "USER mailbox@%0200d.example.org", 0);
	assert_int_equal(feed(fx, line), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK send PASS\r\n");
}

static void test_too_many_auth_failures_close(void **state)
{
	struct fixture *fx = *state;
	enum pop3_action action = POP3_ACTION_NONE;

	/* USER's +OK in between must not reset the count. */
	for (unsigned i = 0; i < POP3_MAX_AUTH_FAILURES; i++) {
		assert_int_equal(action, POP3_ACTION_NONE);
		feed(fx, "USER mailbox@example.org");
		action = complete_login(fx, feed(fx, "PASS guess"), MAILDROP_OPEN_OK);
		assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
	}
	assert_int_equal(action, POP3_ACTION_CLOSE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_CLOSED);
}

/* ---- AUTH PLAIN (RFC 5034) ---- */

/* base64("\0mailbox@example.org\0secret") */
#define PLAIN_GOOD "AG1haWxib3hAZXhhbXBsZS5vcmcAc2VjcmV0"
/* base64("\0mailbox@example.org\0wrong") */
#define PLAIN_WRONG "AG1haWxib3hAZXhhbXBsZS5vcmcAd3Jvbmc="
/* base64("admin@example.org\0mailbox@example.org\0secret") */
#define PLAIN_OTHER_AUTHZID "YWRtaW5AZXhhbXBsZS5vcmcAbWFpbGJveEBleGFtcGxlLm9yZwBzZWNyZXQ="
/* base64("mailbox@example.org\0mailbox@example.org\0secret") */
#define PLAIN_SAME_AUTHZID "bWFpbGJveEBleGFtcGxlLm9yZwBtYWlsYm94QGV4YW1wbGUub3JnAHNlY3JldA=="

static void test_auth_plain_initial_response_succeeds(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(complete_login(fx, feed(fx, "AUTH PLAIN " PLAIN_GOOD), MAILDROP_OPEN_OK),
		POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK maildrop has 3 messages (600 octets)\r\n");
	assert_string_equal(pop3_session_user(fx->s), "mailbox@example.org");
}

static void test_auth_plain_continuation_succeeds(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "auth plain"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+ \r\n");
	assert_int_equal(complete_login(fx, feed(fx, PLAIN_GOOD), MAILDROP_OPEN_OK),
		POP3_ACTION_NONE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
}

static void test_auth_plain_wrong_password_gets_auth_error(void **state)
{
	struct fixture *fx = *state;

	complete_login(fx, feed(fx, "AUTH PLAIN " PLAIN_WRONG), MAILDROP_OPEN_OK);
	assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
}

static void test_auth_plain_cancel_gets_err(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "AUTH PLAIN");
	assert_int_equal(feed(fx, "*"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR AUTH cancelled\r\n");
	/* The exchange is over: the next line is a command again. */
	feed(fx, "CAPA");
	assert_starts_with(out(fx), "+OK Capability list follows\r\n");
}

static void test_auth_plain_malformed_base64_gets_err(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "AUTH PLAIN !!!!"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR malformed AUTH response: base64 expected\r\n");
	feed(fx, "AUTH PLAIN");
	/* A length that is not a multiple of 4. */
	assert_int_equal(feed(fx, "AG1haWxib3g"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR malformed AUTH response: base64 expected\r\n");
}

static void test_auth_plain_empty_response_gets_err(void **state)
{
	struct fixture *fx = *state;

	/* RFC 5034 4: "=" is an empty initial response, which PLAIN cannot use. */
	assert_int_equal(feed(fx, "AUTH PLAIN ="), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR malformed AUTH PLAIN message\r\n");
	/* base64("nonul") */
	feed(fx, "AUTH PLAIN bm9udWw=");
	assert_string_equal(out(fx), "-ERR malformed AUTH PLAIN message\r\n");
}

static void test_auth_plain_foreign_authzid_fails(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "AUTH PLAIN " PLAIN_OTHER_AUTHZID), POP3_ACTION_CHECK_PASSWORD);
	assert_null(pop3_session_auth_server(fx->s));
	complete_login(fx, POP3_ACTION_CHECK_PASSWORD, MAILDROP_OPEN_OK);
	assert_string_equal(out(fx), "-ERR [AUTH] invalid credentials\r\n");
}

static void test_auth_plain_authzid_equal_to_login_succeeds(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(complete_login(fx, feed(fx, "AUTH PLAIN " PLAIN_SAME_AUTHZID),
		MAILDROP_OPEN_OK), POP3_ACTION_NONE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
}

static void test_auth_unknown_mechanism_gets_err(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "AUTH CRAM-MD5"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR unsupported SASL mechanism\r\n");
}

static void test_auth_without_mechanism_lists_plain(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "AUTH");
	assert_string_equal(out(fx), "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n");
}

static void test_auth_continuation_too_long_ends_exchange(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "AUTH PLAIN");
	strbuf_reset(&fx->out);
	assert_int_equal(pop3_session_line_too_long(fx->s, &fx->out), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR line too long\r\n");
	feed(fx, "NOOP");
	assert_string_equal(out(fx), "-ERR NOOP is not valid in the AUTHORIZATION state\r\n");
}

/* ---- STLS (RFC 2595) ---- */

static void test_login_refused_before_stls(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"USER mailbox@example.org", "PASS secret",
		("AUTH PLAIN " PLAIN_GOOD), "AUTH PLAIN", "AUTH"};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_string_equal(out(fx), "-ERR STLS first: no login before TLS (RFC 2595)\r\n");
	}
}

static void test_stls_then_login_succeeds(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "stls"), POP3_ACTION_STARTTLS);
	pop3_session_tls_started(fx->s);
	login(fx);
}

static void test_stls_forgets_user_given_before(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "STLS");
	pop3_session_tls_started(fx->s);
	assert_string_equal(pop3_session_user(fx->s), "");
	assert_int_equal(feed(fx, "PASS secret"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR send USER first\r\n");
}

static void test_stls_when_tls_active_gets_err(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "STLS");
	pop3_session_tls_started(fx->s);
	assert_int_equal(feed(fx, "STLS"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR already using TLS\r\n");
}

static void test_stls_on_implicit_tls_port_gets_err(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "STLS"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR already using TLS\r\n");
}

static void test_stls_not_offered_gets_err(void **state)
{
	struct fixture *fx = fixture_new(false, false);

	(void)state;
	assert_int_equal(feed(fx, "STLS"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR STLS not available\r\n");
	/* Without STLS on offer (no certificate) a plain login is allowed. */
	login(fx);
	teardown((void **)&fx);
}

static void test_stls_with_argument_gets_err(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "STLS now"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR too many arguments\r\n");
}

/* ---- commands in the wrong state, unknown commands, syntax ---- */

static void test_transaction_commands_refused_in_authorization(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"STAT", "LIST", "LIST 1", "UIDL", "RETR 1", "TOP 1 0",
		"DELE 1", "RSET", "NOOP"};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_starts_with(out(fx), "-ERR ");
		assert_non_null(strstr(out(fx), "not valid in the AUTHORIZATION state"));
	}
}

static void test_authorization_commands_refused_in_transaction(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"USER mailbox@example.org", "PASS secret", "AUTH PLAIN",
		"STLS"};

	login(fx);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_non_null(strstr(out(fx), "not valid in the TRANSACTION state"));
	}
}

static void test_unknown_command_gets_err(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "HELO"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR unknown command\r\n");
	feed(fx, "STATUS");
	assert_string_equal(out(fx), "-ERR unknown command\r\n");
	feed(fx, "");
	assert_string_equal(out(fx), "-ERR unknown command\r\n");
}

static void test_apop_is_not_offered(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "APOP mailbox@example.org c4c9334bac560ecc979e58001b3e22fb");
	assert_string_equal(out(fx), "-ERR unknown command\r\n");
}

static void test_nul_in_line_gets_err(void **state)
{
	struct fixture *fx = *state;

	strbuf_reset(&fx->out);
	assert_int_equal(pop3_session_feed_line(fx->s, "CAPA\0x", 6, &fx->out), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR NUL in command line\r\n");
}

static void test_line_too_long_gets_err(void **state)
{
	struct fixture *fx = *state;
	char *line = malloc(POP3_COMMAND_LINE_MAX + 1);

	memset(line, 'A', POP3_COMMAND_LINE_MAX + 1);
	strbuf_reset(&fx->out);
	assert_int_equal(pop3_session_feed_line(fx->s, line, POP3_COMMAND_LINE_MAX + 1, &fx->out),
		POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR line too long\r\n");
	strbuf_reset(&fx->out);
	assert_int_equal(pop3_session_line_too_long(fx->s, &fx->out), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR line too long\r\n");
	free(line);
}

static void test_too_many_errors_close(void **state)
{
	struct fixture *fx = *state;

	for (unsigned i = 1; i < POP3_MAX_ERRORS; i++)
		assert_int_equal(feed(fx, "BOGUS"), POP3_ACTION_NONE);
	assert_int_equal(feed(fx, "BOGUS"), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "-ERR unknown command\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_CLOSED);
	/* A sloppy glue feeding more gets CLOSE again and no reply. */
	assert_int_equal(feed(fx, "CAPA"), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "");
}

static void test_success_resets_error_count(void **state)
{
	struct fixture *fx = *state;

	for (unsigned i = 1; i < POP3_MAX_ERRORS; i++)
		feed(fx, "BOGUS");
	feed(fx, "CAPA");
	assert_int_equal(feed(fx, "BOGUS"), POP3_ACTION_NONE);
}

static void test_extra_arguments_get_err(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"STAT 1", "LIST 1 2", "UIDL 1 2", "RETR 1 2",
		"TOP 1 2 3", "DELE 1 2", "NOOP x", "RSET x", "QUIT now", "CAPA x"};

	login(fx);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_string_equal(out(fx), "-ERR too many arguments\r\n");
	}
}

static void test_missing_arguments_get_err(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"RETR", "TOP 1", "TOP", "DELE", "RETR   "};

	login(fx);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_string_equal(out(fx), "-ERR missing argument\r\n");
	}
}

static void test_bad_message_numbers_get_err(void **state)
{
	struct fixture *fx = *state;
#define NO_SUCH "-ERR no such message, only 3 messages in maildrop\r\n"
	static const struct {
		const char *line;
		const char *reply;
	} cases[] = {
		{"RETR 0", NO_SUCH},
		{"RETR 4", NO_SUCH},
		{"LIST 18446744073709551615", NO_SUCH},
		{"RETR abc", "-ERR invalid message number\r\n"},
		{"RETR -1", "-ERR invalid message number\r\n"},
		{"RETR +1", "-ERR invalid message number\r\n"},
		{"RETR 1a", "-ERR invalid message number\r\n"},
		{"DELE 0x1", "-ERR invalid message number\r\n"},
		{"UIDL 99999999999999999999", "-ERR invalid message number\r\n"},
		{"TOP 18446744073709551616 0", "-ERR invalid message number\r\n"},
		{"RETR 00000000000000000000000000000000000000001", "-ERR argument too long\r\n"},
	};

	login(fx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(feed(fx, cases[i].line), POP3_ACTION_NONE);
		assert_string_equal(out(fx), cases[i].reply);
	}
	/* Leading zeros are still decimal digits. */
	assert_int_equal(feed(fx, "LIST 0003"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK 3 300\r\n");
}

static void test_bad_top_line_counts_get_err(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"TOP 1 -1", "TOP 1 x", "TOP 1 99999999999999999999",
		"TOP 1 2147483648"};

	login(fx);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(feed(fx, lines[i]), POP3_ACTION_NONE);
		assert_string_equal(out(fx), "-ERR invalid number of lines\r\n");
	}
}

static void test_spaces_between_arguments_are_tolerated(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "TOP  2   5 "), POP3_ACTION_RETRIEVE);
	assert_int_equal(pop3_session_retrieve_index(fx->s), 1);
	assert_int_equal(pop3_session_retrieve_lines(fx->s), 5);
	pop3_session_retrieve_opened(fx->s, &fx->out);
	pop3_session_retrieve_done(fx->s, true);
}

/* ---- TRANSACTION ---- */

static void test_stat_excludes_deleted_messages(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "STAT");
	assert_string_equal(out(fx), "+OK 3 600\r\n");
	feed(fx, "DELE 2");
	feed(fx, "STAT");
	assert_string_equal(out(fx), "+OK 2 400\r\n");
}

static void test_list_excludes_deleted_messages(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 2");
	assert_int_equal(feed_listing(fx, "LIST"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK 2 messages (400 octets)\r\n1 100\r\n3 300\r\n.\r\n");
}

static void test_list_single_message(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "LIST 2");
	assert_string_equal(out(fx), "+OK 2 200\r\n");
}

static void test_list_deleted_message_gets_err(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	assert_int_equal(feed(fx, "LIST 1"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR message 1 already deleted\r\n");
}

static void test_uidl_lists_unique_ids_without_deleted(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	assert_int_equal(feed_listing(fx, "UIDL"), POP3_ACTION_NONE);
	assert_string_equal(out(fx),
		"+OK unique-id listing follows\r\n2 uid-2\r\n3 uid-3\r\n.\r\n");
	feed(fx, "UIDL 3");
	assert_string_equal(out(fx), "+OK 3 uid-3\r\n");
	feed(fx, "UIDL 1");
	assert_string_equal(out(fx), "-ERR message 1 already deleted\r\n");
}

static void test_list_of_empty_maildrop(void **state)
{
	struct fixture *fx = *state;

	fx->md.count = 0;
	login(fx);
	assert_int_equal(feed_listing(fx, "LIST"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK 0 messages (0 octets)\r\n.\r\n");
	feed(fx, "RETR 1");
	assert_string_equal(out(fx), "-ERR no such message, only 0 messages in maildrop\r\n");
}

static void test_list_of_ten_thousand_messages(void **state)
{
	struct fixture *fx = *state;
	enum { COUNT = 10000 };
	struct maildrop_message *many = calloc(COUNT, sizeof(*many));
	char expect[64];

	assert_non_null(many);
	for (size_t i = 0; i < COUNT; i++) {
		many[i].size = 1000 + i;
		snprintf(many[i].uidl, sizeof(many[i].uidl), "1700000000.M%zuP42.host", i);
	}
	fx->md.messages = many;
	fx->md.count = COUNT;
	login(fx);
	feed_listing(fx, "LIST");
	assert_starts_with(out(fx), "+OK 10000 messages (59995000 octets)\r\n1 1000\r\n");
	snprintf(expect, sizeof(expect), "\r\n10000 10999\r\n.\r\n");
	assert_string_equal(out(fx) + fx->out.len - strlen(expect), expect);
	feed_listing(fx, "UIDL");
	snprintf(expect, sizeof(expect), "\r\n10000 1700000000.M9999P42.host\r\n.\r\n");
	assert_string_equal(out(fx) + fx->out.len - strlen(expect), expect);
	free(many);
}

/* Checks one part of a listing as a client reads it: whole CRLF lines "N VALUE" in order
 * (the deleted message skipped), the terminator only at the end. */
struct listing_reader {
	const struct maildrop_message *messages;
	size_t skip;  /* the deleted message's index */
	size_t next;  /* the index the next line must name */
	bool uidl;
	bool ended;
};

static void read_listing_part(struct listing_reader *r, const char *part, size_t len)
{
	char want[128];

	while (len > 0) {
		const char *crlf = memmem(part, len, "\r\n", 2);
		size_t line = crlf ? (size_t)(crlf - part) + 2 : 0;

		assert_non_null(crlf); /* parts end with whole lines */
		assert_false(r->ended);
		if (line == 3 && part[0] == '.') {
			r->ended = true;
		} else {
			if (r->next == r->skip)
				r->next++;
			if (r->uidl)
				snprintf(want, sizeof(want), "%zu %s\r\n", r->next + 1,
					r->messages[r->next].uidl);
			else
				snprintf(want, sizeof(want), "%zu %" PRIu64 "\r\n", r->next + 1,
					r->messages[r->next].size);
			assert_int_equal(line, strlen(want));
			assert_memory_equal(part, want, line);
			r->next++;
		}
		part += line;
		len -= line;
	}
}

/* A maildrop at the limit (POP3_MAX_MESSAGES, unique-ids of the longest length): LIST and
 * UIDL are complete and in order, and no part the glue is handed ever holds more than the
 * budget plus one line, however long the whole listing (some 80 MB for UIDL). */
static void test_listing_at_the_message_limit_stays_within_the_chunk_bound(void **state)
{
	struct fixture *fx = *state;
	enum { BUDGET = 16 * 1024 };
	struct maildrop_message *many = calloc(POP3_MAX_MESSAGES, sizeof(*many));
	const size_t bound = BUDGET - 1 + POP3_LISTING_LINE_MAX;

	assert_non_null(many);
	for (size_t i = 0; i < POP3_MAX_MESSAGES; i++) {
		many[i].size = UINT64_C(1) << 40 | i;
		snprintf(many[i].uidl, sizeof(many[i].uidl), "%070zu", i);
	}
	fx->md.messages = many;
	fx->md.count = POP3_MAX_MESSAGES;
	login(fx);
	feed(fx, "DELE 500000");
	for (int uidl = 0; uidl <= 1; uidl++) {
		struct listing_reader r = {.messages = many, .skip = 499999, .uidl = uidl};
		size_t parts = 0;
		enum pop3_action action = feed(fx, uidl ? "UIDL" : "LIST");

		assert_int_equal(action, POP3_ACTION_LISTING);
		assert_starts_with(out(fx), "+OK ");
		while (action == POP3_ACTION_LISTING) {
			strbuf_reset(&fx->out); /* the glue has flushed it */
			action = pop3_session_listing_more(fx->s, &fx->out, BUDGET);
			if (fx->out.len > bound)
				fail_msg("part %zu holds %zu octets, bound %zu", parts, fx->out.len,
					bound);
			read_listing_part(&r, fx->out.data, fx->out.len);
			parts++;
		}
		assert_int_equal(action, POP3_ACTION_NONE);
		assert_true(r.ended);
		assert_int_equal(r.next, POP3_MAX_MESSAGES);
		assert_true(parts > 1000);
		/* The buffer itself never grew past the bound either. */
		assert_true(fx->out.cap <= 2 * bound);
	}
	free(many);
}

/* A budget of 0 still makes progress: one line per call. */
static void test_listing_with_no_budget_writes_a_line_per_call(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "LIST"), POP3_ACTION_LISTING);
	strbuf_reset(&fx->out);
	for (int i = 1; i <= 3; i++) {
		char want[32];

		assert_int_equal(pop3_session_listing_more(fx->s, &fx->out, 0),
			i < 3 ? POP3_ACTION_LISTING : POP3_ACTION_NONE);
		snprintf(want, sizeof(want), "%d %d\r\n%s", i, 100 * i, i < 3 ? "" : ".\r\n");
		assert_string_equal(out(fx), want);
		strbuf_reset(&fx->out);
	}
	/* Lines are read again once the listing has ended. */
	assert_int_equal(feed(fx, "NOOP"), POP3_ACTION_NONE);
}

static void test_dele_then_rset_restores_message(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "DELE 1"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK message 1 deleted\r\n");
	feed(fx, "DELE 3");
	assert_int_equal(feed(fx, "RSET"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK maildrop has 3 messages (600 octets)\r\n");
	feed(fx, "LIST 1");
	assert_string_equal(out(fx), "+OK 1 100\r\n");
	/* RSET cleared the marks: QUIT hands the store nothing, except what is marked after. */
	feed(fx, "DELE 2");
	assert_int_equal(feed(fx, "QUIT"), POP3_ACTION_COMMIT);
	assert_deletions(fx, (const size_t[]){1}, 1);
}

/* The marks are the session's: the store's listing is never written to, and the list
 * handed over at UPDATE is the marked indexes in ascending order, whatever the DELE order. */
static void test_deletions_are_the_sessions_own_and_handed_over_at_quit(void **state)
{
	struct fixture *fx = *state;
	struct maildrop_message before[TEST_MESSAGES];

	login(fx);
	memcpy(before, fx->messages, sizeof(before));
	feed(fx, "DELE 3");
	feed(fx, "DELE 1");
	assert_memory_equal(before, fx->messages, sizeof(before));
	assert_int_equal(feed(fx, "QUIT"), POP3_ACTION_COMMIT);
	assert_deletions(fx, (const size_t[]){0, 2}, 2);
}

static void test_quit_without_dele_hands_over_an_empty_list(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "QUIT"), POP3_ACTION_COMMIT);
	assert_deletions(fx, NULL, 0);
}

static void test_dele_twice_gets_err(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 2");
	assert_int_equal(feed(fx, "DELE 2"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR message 2 already deleted\r\n");
	feed(fx, "STAT");
	assert_string_equal(out(fx), "+OK 2 400\r\n");
}

static void test_noop_replies_ok(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "NOOP"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK\r\n");
}

static void test_retr_replies_size_and_asks_for_retrieve(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "RETR 2"), POP3_ACTION_RETRIEVE);
	/* RFC 1939 5: "+OK" only once the glue has the file open; nothing before. */
	assert_string_equal(out(fx), "");
	pop3_session_retrieve_opened(fx->s, &fx->out);
	assert_string_equal(out(fx), "+OK 200 octets\r\n");
	assert_ptr_equal(pop3_session_retrieve_message(fx->s), &fx->messages[1]);
	assert_string_equal(pop3_session_retrieve_message(fx->s)->path, "/m/2");
	assert_int_equal(pop3_session_retrieve_index(fx->s), 1);
	assert_int_equal(pop3_session_retrieve_lines(fx->s), -1);
	assert_int_equal(pop3_session_retrieve_done(fx->s, true), POP3_ACTION_NONE);
	feed(fx, "NOOP");
	assert_string_equal(out(fx), "+OK\r\n");
}

static void test_top_asks_for_retrieve_with_line_count(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "top 3 10"), POP3_ACTION_RETRIEVE);
	assert_string_equal(out(fx), "");
	pop3_session_retrieve_opened(fx->s, &fx->out);
	assert_string_equal(out(fx), "+OK top of message follows\r\n");
	assert_int_equal(pop3_session_retrieve_index(fx->s), 2);
	assert_int_equal(pop3_session_retrieve_lines(fx->s), 10);
	pop3_session_retrieve_done(fx->s, true);
	assert_int_equal(feed(fx, "TOP 1 0"), POP3_ACTION_RETRIEVE);
	assert_int_equal(pop3_session_retrieve_lines(fx->s), 0);
	pop3_session_retrieve_opened(fx->s, &fx->out);
	pop3_session_retrieve_done(fx->s, true);
}

static void test_retr_of_deleted_message_gets_err(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	assert_int_equal(feed(fx, "RETR 1"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR message 1 already deleted\r\n");
	assert_int_equal(feed(fx, "TOP 1 0"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR message 1 already deleted\r\n");
}

static void test_retrieve_failure_closes(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "RETR 1");
	pop3_session_retrieve_opened(fx->s, &fx->out);
	assert_int_equal(pop3_session_retrieve_done(fx->s, false), POP3_ACTION_CLOSE);
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_CLOSED);
}

/* The glue's side when the file is gone: nothing was written for RETR/TOP, the -ERR is all. */
static enum pop3_action retrieve_unavailable(struct fixture *fx)
{
	assert_string_equal(out(fx), "");
	return pop3_session_retrieve_failed(fx->s, ENOENT, &fx->out);
}

static void test_retr_of_unavailable_message_gets_err_and_session_goes_on(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 3");
	assert_int_equal(feed(fx, "RETR 2"), POP3_ACTION_RETRIEVE);
	assert_int_equal(retrieve_unavailable(fx), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [SYS/TEMP] message unavailable\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_TRANSACTION);
	/* RFC 1939 6: the DELE given before still takes effect at QUIT. */
	feed(fx, "NOOP");
	assert_string_equal(out(fx), "+OK\r\n");
	assert_int_equal(feed(fx, "QUIT"), POP3_ACTION_COMMIT);
	assert_deletions(fx, (const size_t[]){2}, 1);
}

static void test_top_of_unavailable_message_gets_err(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	assert_int_equal(feed(fx, "TOP 1 0"), POP3_ACTION_RETRIEVE);
	assert_int_equal(retrieve_unavailable(fx), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [SYS/TEMP] message unavailable\r\n");
	assert_int_equal(feed(fx, "LIST 1"), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "+OK 1 100\r\n");
}

/* ---- QUIT and UPDATE (RFC 1939 6) ---- */

static void test_quit_in_authorization_closes(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(feed(fx, "QUIT"), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "+OK mailpopbox signing off\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_CLOSED);
}

static void test_quit_in_transaction_commits_then_signs_off(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	assert_int_equal(feed(fx, "quit"), POP3_ACTION_COMMIT);
	assert_string_equal(out(fx), "");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_UPDATE);
	assert_deletions(fx, (const size_t[]){0}, 1); /* what maildrop_commit_deletions gets */
	assert_int_equal(pop3_session_commit_done(fx->s, true, &fx->out), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "+OK mailpopbox signing off (2 messages left)\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_CLOSED);
}

static void test_quit_after_deleting_all_says_maildrop_empty(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	feed(fx, "DELE 2");
	feed(fx, "DELE 3");
	feed(fx, "QUIT");
	assert_int_equal(pop3_session_commit_done(fx->s, true, &fx->out), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "+OK mailpopbox signing off (maildrop empty)\r\n");
}

static void test_quit_commit_failure_gets_sys_temp(void **state)
{
	struct fixture *fx = *state;

	login(fx);
	feed(fx, "DELE 1");
	feed(fx, "QUIT");
	assert_int_equal(pop3_session_commit_done(fx->s, false, &fx->out), POP3_ACTION_CLOSE);
	assert_string_equal(out(fx), "-ERR [SYS/TEMP] some deleted messages not removed\r\n");
}

/* ---- maildrop open statuses ---- */

static void test_maildrop_locked_gets_in_use(void **state)
{
	struct fixture *fx = *state;

	feed(fx, "USER mailbox@example.org");
	assert_int_equal(complete_login(fx, feed(fx, "PASS secret"), MAILDROP_OPEN_LOCKED),
		POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [IN-USE] maildrop locked\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_AUTHORIZATION);
	/* The client may try again once the other session is gone. */
	login(fx);
}

static void test_maildrop_error_gets_sys_temp(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(complete_login(fx, feed(fx, "AUTH PLAIN " PLAIN_GOOD),
		MAILDROP_OPEN_ERROR), POP3_ACTION_NONE);
	assert_string_equal(out(fx), "-ERR [SYS/TEMP] cannot open maildrop\r\n");
	assert_int_equal(pop3_session_state(fx->s), POP3_STATE_AUTHORIZATION);
	assert_null(pop3_session_maildrop_path(fx->s));
}

/* ---- pipelining (RFC 2449 6.6) ---- */

static void test_pipelined_lines_reply_in_order(void **state)
{
	struct fixture *fx = *state;
	static const char *const lines[] = {"USER mailbox@example.org", "PASS secret", "STAT",
		"LIST 1", "RETR 1", "DELE 1", "QUIT"};
	enum pop3_action action;

	/* The glue feeds lines while the action is NONE, and after each other action completes
	 * it, then goes on with the next buffered line: all replies land in one buffer in order. */
	strbuf_reset(&fx->out);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		action = pop3_session_feed_line(fx->s, lines[i], strlen(lines[i]), &fx->out);
		if (action == POP3_ACTION_CHECK_PASSWORD) {
			bool ok = pop3_session_verify_password(fx->s);

			action = pop3_session_auth_result(fx->s, ok, &fx->out);
			assert_int_equal(action, POP3_ACTION_OPEN_MAILDROP);
			action = pop3_session_maildrop_opened(fx->s, MAILDROP_OPEN_OK, &fx->md,
				&fx->out);
		} else if (action == POP3_ACTION_RETRIEVE) {
			struct dotstuff f;

			pop3_session_retrieve_opened(fx->s, &fx->out);
			dotstuff_init(&f, pop3_session_retrieve_lines(fx->s));
			dotstuff_feed(&f, "Subject: x\r\n\r\n.body\r\n", 21, &fx->out);
			dotstuff_finish(&f, &fx->out);
			action = pop3_session_retrieve_done(fx->s, true);
		} else if (action == POP3_ACTION_COMMIT) {
			action = pop3_session_commit_done(fx->s, true, &fx->out);
			assert_int_equal(action, POP3_ACTION_CLOSE);
			break;
		}
		assert_int_equal(action, POP3_ACTION_NONE);
	}
	assert_string_equal(out(fx),
		"+OK send PASS\r\n"
		"+OK maildrop has 3 messages (600 octets)\r\n"
		"+OK 3 600\r\n"
		"+OK 1 100\r\n"
		"+OK 100 octets\r\nSubject: x\r\n\r\n..body\r\n.\r\n"
		"+OK message 1 deleted\r\n"
		"+OK mailpopbox signing off (2 messages left)\r\n");
}

/* Tests on an implicit-TLS connection, and on a plain one offering STLS. */
#define TLS_PORT(test) cmocka_unit_test_setup_teardown(test, setup_tls, teardown)
#define STLS_PORT(test) cmocka_unit_test_setup_teardown(test, setup_stls_port, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TLS_PORT(test_greeting_is_ok_without_apop_timestamp),
		TLS_PORT(test_capa_in_authorization_lists_user_and_sasl),
		TLS_PORT(test_capa_in_transaction_lists_same_capabilities),
		STLS_PORT(test_capa_on_stls_port_before_tls_lists_stls_not_user),
		STLS_PORT(test_capa_after_stls_lists_user_not_stls),
		cmocka_unit_test(test_capa_shows_configured_implementation),
		TLS_PORT(test_user_pass_success_opens_maildrop),
		TLS_PORT(test_user_and_domain_are_case_insensitive),
		TLS_PORT(test_pass_wrong_password_gets_auth_error),
		TLS_PORT(test_pass_unknown_user_gets_same_auth_error),
		TLS_PORT(test_pass_other_domain_gets_auth_error),
		TLS_PORT(test_pass_without_user_is_refused),
		TLS_PORT(test_pass_needs_a_new_user_after_failure),
		TLS_PORT(test_pass_keeps_spaces_in_password),
		TLS_PORT(test_pass_without_argument_gets_err),
		TLS_PORT(test_user_with_two_arguments_gets_err),
		TLS_PORT(test_user_with_long_domain_is_accepted),
		TLS_PORT(test_too_many_auth_failures_close),
		TLS_PORT(test_auth_plain_initial_response_succeeds),
		TLS_PORT(test_auth_plain_continuation_succeeds),
		TLS_PORT(test_auth_plain_wrong_password_gets_auth_error),
		TLS_PORT(test_auth_plain_cancel_gets_err),
		TLS_PORT(test_auth_plain_malformed_base64_gets_err),
		TLS_PORT(test_auth_plain_empty_response_gets_err),
		TLS_PORT(test_auth_plain_foreign_authzid_fails),
		TLS_PORT(test_auth_plain_authzid_equal_to_login_succeeds),
		TLS_PORT(test_auth_unknown_mechanism_gets_err),
		TLS_PORT(test_auth_without_mechanism_lists_plain),
		TLS_PORT(test_auth_continuation_too_long_ends_exchange),
		STLS_PORT(test_login_refused_before_stls),
		STLS_PORT(test_stls_then_login_succeeds),
		STLS_PORT(test_stls_forgets_user_given_before),
		STLS_PORT(test_stls_when_tls_active_gets_err),
		TLS_PORT(test_stls_on_implicit_tls_port_gets_err),
		cmocka_unit_test(test_stls_not_offered_gets_err),
		STLS_PORT(test_stls_with_argument_gets_err),
		TLS_PORT(test_transaction_commands_refused_in_authorization),
		TLS_PORT(test_authorization_commands_refused_in_transaction),
		TLS_PORT(test_unknown_command_gets_err),
		TLS_PORT(test_apop_is_not_offered),
		TLS_PORT(test_nul_in_line_gets_err),
		TLS_PORT(test_line_too_long_gets_err),
		TLS_PORT(test_too_many_errors_close),
		TLS_PORT(test_success_resets_error_count),
		TLS_PORT(test_extra_arguments_get_err),
		TLS_PORT(test_missing_arguments_get_err),
		TLS_PORT(test_bad_message_numbers_get_err),
		TLS_PORT(test_bad_top_line_counts_get_err),
		TLS_PORT(test_spaces_between_arguments_are_tolerated),
		TLS_PORT(test_stat_excludes_deleted_messages),
		TLS_PORT(test_list_excludes_deleted_messages),
		TLS_PORT(test_list_single_message),
		TLS_PORT(test_list_deleted_message_gets_err),
		TLS_PORT(test_uidl_lists_unique_ids_without_deleted),
		TLS_PORT(test_list_of_empty_maildrop),
		TLS_PORT(test_list_of_ten_thousand_messages),
		TLS_PORT(test_listing_at_the_message_limit_stays_within_the_chunk_bound),
		TLS_PORT(test_listing_with_no_budget_writes_a_line_per_call),
		TLS_PORT(test_dele_then_rset_restores_message),
		TLS_PORT(test_deletions_are_the_sessions_own_and_handed_over_at_quit),
		TLS_PORT(test_quit_without_dele_hands_over_an_empty_list),
		TLS_PORT(test_dele_twice_gets_err),
		TLS_PORT(test_noop_replies_ok),
		TLS_PORT(test_retr_replies_size_and_asks_for_retrieve),
		TLS_PORT(test_top_asks_for_retrieve_with_line_count),
		TLS_PORT(test_retr_of_deleted_message_gets_err),
		TLS_PORT(test_retrieve_failure_closes),
		TLS_PORT(test_retr_of_unavailable_message_gets_err_and_session_goes_on),
		TLS_PORT(test_top_of_unavailable_message_gets_err),
		TLS_PORT(test_quit_in_authorization_closes),
		TLS_PORT(test_quit_in_transaction_commits_then_signs_off),
		TLS_PORT(test_quit_after_deleting_all_says_maildrop_empty),
		TLS_PORT(test_quit_commit_failure_gets_sys_temp),
		TLS_PORT(test_maildrop_locked_gets_in_use),
		TLS_PORT(test_maildrop_error_gets_sys_temp),
		TLS_PORT(test_pipelined_lines_reply_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
