/* test_mail_trace.c: the final-delivery trace fields (src/mail/trace.c). The Received field,
 * which needs an SMTP session, is tested with the session in test_smtp_session.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mail/trace.h"
#include "strbuf.h"

static void test_return_path_names_the_sender_or_the_null_path(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	mail_trace_return_path(&sb, "bob@example.com");
	mail_trace_return_path(&sb, "");
	assert_string_equal(sb.data, "Return-Path: <bob@example.com>\r\nReturn-Path: <>\r\n");
	strbuf_free(&sb);
}

static void test_delivered_to_names_one_recipient_a_line(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	mail_trace_delivered_to(&sb, "alice@example.org");
	mail_trace_delivered_to(&sb, "dave@example.org");
	assert_string_equal(sb.data,
		"Delivered-To: alice@example.org\r\nDelivered-To: dave@example.org\r\n");
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_return_path_names_the_sender_or_the_null_path),
		cmocka_unit_test(test_delivered_to_names_one_recipient_a_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
