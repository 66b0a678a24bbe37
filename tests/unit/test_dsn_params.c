/* test_dsn_params.c: RFC 3461 NOTIFY, RET, ORCPT values and xtext (src/mail/dsn_params.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "mail/dsn_params.h"

static bool notify_parse(const char *s, unsigned *notify)
{
	return dsn_notify_parse(s, strlen(s), notify);
}

static void test_notify_takes_never_alone_or_a_list_in_any_case(void **state)
{
	unsigned n = 99;

	(void)state;
	assert_true(notify_parse("NEVER", &n));
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_true(notify_parse("success,Delay", &n));
	assert_int_equal(n, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
	assert_true(notify_parse("FAILURE,FAILURE", &n));
	assert_int_equal(n, DSN_NOTIFY_FAILURE);
}

static void test_notify_refuses_never_combined_empty_or_unknown_keywords(void **state)
{
	static const char *const bad[] = {"", "NEVER,SUCCESS", "SUCCESS,NEVER", "SUCCESS,",
		",DELAY", "SUCCESS,,DELAY", "SUCCES", "ALWAYS", "SUCCESS DELAY"};
	unsigned n = 99;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(notify_parse(bad[i], &n));
		assert_int_equal(n, 99);
	}
}

static void test_notify_format_writes_keywords_in_rfc_order(void **state)
{
	char *s;

	(void)state;
	assert_null(dsn_notify_format(0));
	s = dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_string_equal(s, "SUCCESS,FAILURE,DELAY");
	free(s);
	s = dsn_notify_format(DSN_NOTIFY_NEVER);
	assert_string_equal(s, "NEVER");
	free(s);
}

static void test_notify_names_and_bits_match_exactly(void **state)
{
	(void)state;
	for (unsigned bit = 1; bit & DSN_NOTIFY_ALL; bit <<= 1)
		assert_int_equal(dsn_notify_bit(dsn_notify_name(bit)), bit);
	assert_int_equal(dsn_notify_bit("success"), 0);
	assert_int_equal(dsn_notify_bit(""), 0);
	assert_null(dsn_notify_name(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY));
}

static void test_ret_is_full_or_hdrs_in_any_case(void **state)
{
	enum dsn_ret r = DSN_RET_ABSENT;

	(void)state;
	assert_true(dsn_ret_parse("full", 4, &r));
	assert_int_equal(r, DSN_RET_FULL);
	assert_true(dsn_ret_parse("HDRS", 4, &r));
	assert_int_equal(r, DSN_RET_HDRS);
	assert_false(dsn_ret_parse("HDR", 3, &r));
	assert_false(dsn_ret_parse("", 0, &r));
	assert_string_equal(dsn_ret_name(DSN_RET_FULL), "FULL");
	assert_string_equal(dsn_ret_name(DSN_RET_HDRS), "HDRS");
	assert_null(dsn_ret_name(DSN_RET_ABSENT));
}

static void test_xtext_decodes_hexchars_and_refuses_bad_syntax(void **state)
{
	char out[16];

	(void)state;
	assert_true(dsn_xtext_decode("a+2Bb+3Dc", 9, out, sizeof(out)));
	assert_string_equal(out, "a+b=c");
	assert_false(dsn_xtext_decode("", 0, out, sizeof(out)));
	assert_false(dsn_xtext_decode("a+2b", 4, out, sizeof(out)));  /* lower-case hex */
	assert_false(dsn_xtext_decode("a+2", 3, out, sizeof(out)));   /* cut short */
	assert_false(dsn_xtext_decode("a=b", 3, out, sizeof(out)));
	assert_false(dsn_xtext_decode("a b", 3, out, sizeof(out)));
	assert_false(dsn_xtext_decode("a+0Ab", 5, out, sizeof(out))); /* a control octet */
	assert_false(dsn_xtext_decode("a+7F", 4, out, sizeof(out)));
	assert_false(dsn_xtext_decode("abcd", 4, out, 4));             /* no room for the NUL */
	assert_true(dsn_xtext_decode("abc", 3, out, 4));
}

static void test_xtext_encode_escapes_plus_equals_and_non_printables(void **state)
{
	char *s = dsn_xtext_encode("a+b=c d\xc3\xa9");
	char out[32];

	(void)state;
	assert_string_equal(s, "a+2Bb+3Dc+20d+C3+A9");
	assert_true(dsn_xtext_valid(s, 100));
	free(s);
	s = dsn_xtext_encode("<id@example.org>");
	assert_true(dsn_xtext_decode(s, strlen(s), out, sizeof(out)));
	assert_string_equal(out, "<id@example.org>");
	free(s);
}

static void test_xtext_valid_checks_syntax_and_length(void **state)
{
	(void)state;
	assert_true(dsn_xtext_valid("abc+0A", 6));
	assert_false(dsn_xtext_valid("abc+0A", 5));
	assert_false(dsn_xtext_valid("", 5));
	assert_false(dsn_xtext_valid("a+0", 5));
	assert_false(dsn_xtext_valid("a+0a", 5));
	assert_false(dsn_xtext_valid("a=b", 5));
}

static void test_orcpt_keeps_its_addr_type_and_encodes_the_address(void **state)
{
	char *s = dsn_orcpt_encode("rfc822;a+b@example.org");
	char out[SMTP_ORCPT_MAX + 1];

	(void)state;
	assert_string_equal(s, "rfc822;a+2Bb@example.org");
	assert_true(dsn_orcpt_valid(s));
	assert_true(dsn_orcpt_decode(s, strlen(s), out, sizeof(out)));
	assert_string_equal(out, "rfc822;a+b@example.org");
	free(s);
	/* An addr-type decoded with a "+" in it is not sent back invalid. */
	s = dsn_orcpt_encode("+x;a@example.org");
	assert_string_equal(s, "+2Bx;a@example.org");
	assert_true(dsn_orcpt_valid(s));
	free(s);
	assert_false(dsn_orcpt_decode("a@example.org", 13, out, sizeof(out)));
	assert_false(dsn_orcpt_valid(";a@example.org"));
	assert_false(dsn_orcpt_valid("rfc822;"));
	assert_false(dsn_orcpt_valid("a@example.org"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_takes_never_alone_or_a_list_in_any_case),
		cmocka_unit_test(test_notify_refuses_never_combined_empty_or_unknown_keywords),
		cmocka_unit_test(test_notify_format_writes_keywords_in_rfc_order),
		cmocka_unit_test(test_notify_names_and_bits_match_exactly),
		cmocka_unit_test(test_ret_is_full_or_hdrs_in_any_case),
		cmocka_unit_test(test_xtext_decodes_hexchars_and_refuses_bad_syntax),
		cmocka_unit_test(test_xtext_encode_escapes_plus_equals_and_non_printables),
		cmocka_unit_test(test_xtext_valid_checks_syntax_and_length),
		cmocka_unit_test(test_orcpt_keeps_its_addr_type_and_encodes_the_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
