/* test_imap_reply.c: the IMAP response parser (src/push/imap_reply.c) on the responses push
 * delivery meets, from Dovecot's and Gmail's greetings to APPENDUID, TOOBIG and literals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "push/imap_reply.h"

static struct imap_reply parse_ok(const char *line)
{
	struct imap_reply r;

	assert_true(imap_reply_parse(line, strlen(line), &r));
	return r;
}

static void assert_not_a_response(const char *line)
{
	struct imap_reply r;

	assert_false(imap_reply_parse(line, strlen(line), &r));
}

static void test_tagged_ok_with_text(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("A12 OK Append completed.");
	assert_int_equal(r.kind, IMAP_REPLY_TAGGED);
	assert_string_equal(r.tag, "A12");
	assert_int_equal(r.status, IMAP_STATUS_OK);
	assert_int_equal(r.code, IMAP_CODE_NONE);
	assert_string_equal(r.text, "Append completed.");
	assert_false(r.literal);
}

static void test_status_words_are_case_insensitive(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("a1 ok done").status, IMAP_STATUS_OK);
	assert_int_equal(parse_ok("a1 No nope").status, IMAP_STATUS_NO);
	assert_int_equal(parse_ok("a1 bad what").status, IMAP_STATUS_BAD);
}

static void test_tagged_bye_or_preauth_is_not_a_response(void **state)
{
	(void)state;
	/* RFC 9051 7.1.4, 7.1.5: BYE and PREAUTH are always untagged. */
	assert_not_a_response("A1 BYE later");
	assert_not_a_response("A1 PREAUTH hello");
	assert_not_a_response("A1 MAYBE");
	assert_not_a_response("A1");
	assert_not_a_response("A1 ");
	assert_not_a_response("");
	assert_not_a_response(" OK x");
	assert_not_a_response("*");
	assert_not_a_response("* ");
	assert_not_a_response("*OK x");
}

static void test_tag_too_long_or_with_bad_characters_is_refused(void **state)
{
	(void)state;
	assert_not_a_response("A12345678901234567 OK x");
	assert_not_a_response("A+1 OK x");
	assert_not_a_response("A\"1 OK x");
	assert_not_a_response("A{1 OK x");
	assert_string_equal(parse_ok("A123456789012345 OK x").tag, "A123456789012345");
}

static void test_untagged_status_responses(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* BYE Server shutting down.");
	assert_int_equal(r.kind, IMAP_REPLY_UNTAGGED);
	assert_int_equal(r.status, IMAP_STATUS_BYE);
	assert_string_equal(r.text, "Server shutting down.");
	r = parse_ok("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as x");
	assert_int_equal(r.status, IMAP_STATUS_PREAUTH);
	assert_int_equal(r.code, IMAP_CODE_CAPABILITY);
	assert_true(r.capabilities.imap4rev1);
	assert_int_equal(parse_ok("* NO [ALERT] quota near").code, IMAP_CODE_ALERT);
	assert_int_equal(parse_ok("* BAD junk").status, IMAP_STATUS_BAD);
}

static void test_dovecot_greeting_capabilities(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE "
		"IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.");
	assert_int_equal(r.kind, IMAP_REPLY_UNTAGGED);
	assert_int_equal(r.status, IMAP_STATUS_OK);
	assert_int_equal(r.code, IMAP_CODE_CAPABILITY);
	assert_true(r.capabilities.imap4rev1);
	assert_true(r.capabilities.sasl_ir);
	assert_true(r.capabilities.literal_plus);
	assert_false(r.capabilities.literal_minus);
	assert_true(r.capabilities.starttls);
	assert_true(r.capabilities.auth_plain);
	assert_false(r.capabilities.auth_xoauth2);
	assert_false(r.capabilities.logindisabled);
	assert_string_equal(r.text, "Dovecot (Debian) ready.");
}

static void test_capability_data_response(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* CAPABILITY IMAP4rev1 IMAP4rev2 UIDPLUS MULTIAPPEND "
		"LITERAL- APPENDLIMIT=35651584 AUTH=XOAUTH2 auth=oauthbearer LOGINDISABLED");
	assert_int_equal(r.data, IMAP_DATA_CAPABILITY);
	assert_int_equal(r.status, IMAP_STATUS_NONE);
	assert_true(r.capabilities.imap4rev2);
	assert_true(r.capabilities.uidplus);
	assert_true(r.capabilities.multiappend);
	assert_true(r.capabilities.literal_minus);
	assert_false(r.capabilities.literal_plus);
	assert_true(r.capabilities.appendlimit_global);
	assert_int_equal(r.capabilities.appendlimit, 35651584);
	assert_true(r.capabilities.auth_xoauth2);
	assert_true(r.capabilities.auth_oauthbearer);
	assert_false(r.capabilities.auth_plain);
	assert_true(r.capabilities.logindisabled);
	assert_false(r.literal);
}

static void test_appendlimit_without_value_or_garbled_sets_no_limit(void **state)
{
	(void)state;
	struct imap_capabilities caps;
	/* RFC 7889 2: a bare APPENDLIMIT means limits per mailbox (STATUS); none we know. */
	imap_capabilities_parse("APPENDLIMIT", 11, &caps);
	assert_false(caps.appendlimit_global);
	imap_capabilities_parse("APPENDLIMIT=12x", 15, &caps);
	assert_false(caps.appendlimit_global);
	imap_capabilities_parse("APPENDLIMIT=99999999999999999999999", 35, &caps);
	assert_false(caps.appendlimit_global);
	imap_capabilities_parse("APPENDLIMIT=", 12, &caps);
	assert_false(caps.appendlimit_global);
}

static void test_capability_atoms_must_match_whole(void **state)
{
	(void)state;
	struct imap_capabilities caps;
	const char *list = "LITERAL++ AUTH=PLAINX XSTARTTLS  SASL-IR";
	imap_capabilities_parse(list, strlen(list), &caps);
	assert_false(caps.literal_plus);
	assert_false(caps.auth_plain);
	assert_false(caps.starttls);
	assert_true(caps.sasl_ir);
}

static void test_capability_count_is_bounded(void **state)
{
	(void)state;
	char list[PUSH_IMAP_CAPABILITIES_MAX * 3 + 32] = "";
	for (int i = 0; i < PUSH_IMAP_CAPABILITIES_MAX; i++)
		strcat(list, "X ");
	strcat(list, "LITERAL+");
	struct imap_capabilities caps;
	imap_capabilities_parse(list, strlen(list), &caps);
	assert_false(caps.literal_plus);
}

static void test_new_capability_list_replaces_the_old(void **state)
{
	(void)state;
	struct imap_capabilities caps;
	imap_capabilities_parse("STARTTLS LITERAL+", 17, &caps);
	assert_true(caps.starttls);
	imap_capabilities_parse("IMAP4rev1", 9, &caps);
	assert_false(caps.starttls);
	assert_false(caps.literal_plus);
}

static void test_appenduid(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("A3 OK [APPENDUID 1700000000 42] Append completed.");
	assert_int_equal(r.code, IMAP_CODE_APPENDUID);
	assert_int_equal(r.uidvalidity, 1700000000u);
	assert_int_equal(r.uid, 42);
	assert_string_equal(r.text, "Append completed.");
	/* RFC 4315 3: with MULTIAPPEND the uid is a set; the first is the first message's. */
	r = parse_ok("A3 OK [APPENDUID 7 10:12] done");
	assert_int_equal(r.code, IMAP_CODE_APPENDUID);
	assert_int_equal(r.uid, 10);
	assert_string_equal(r.uid_set, "10:12");
	/* A garbled set keeps the first UID but no set. */
	r = parse_ok("A3 OK [APPENDUID 7 10:x] done");
	assert_int_equal(r.code, IMAP_CODE_APPENDUID);
	assert_int_equal(r.uid, 10);
	assert_string_equal(r.uid_set, "");
}

static void test_uid_set_nth_names_each_message_of_a_multiappend(void **state)
{
	(void)state;
	uint32_t uid = 0;
	/* RFC 4315 3: the UIDs in the order the messages were appended. */
	assert_true(imap_uid_set_nth("10:12", 0, &uid));
	assert_int_equal(uid, 10);
	assert_true(imap_uid_set_nth("10:12", 2, &uid));
	assert_int_equal(uid, 12);
	assert_false(imap_uid_set_nth("10:12", 3, &uid));
	assert_true(imap_uid_set_nth("5,9:10,20", 2, &uid));
	assert_int_equal(uid, 10);
	assert_true(imap_uid_set_nth("5,9:10,20", 3, &uid));
	assert_int_equal(uid, 20);
	assert_false(imap_uid_set_nth("5,9:10,20", 4, &uid));
	assert_true(imap_uid_set_nth("4294967295", 0, &uid));
	assert_int_equal(uid, 4294967295u);
	assert_true(imap_uid_set_nth("1:4294967295", 4294967294u, &uid));
	assert_int_equal(uid, 4294967295u);
	assert_false(imap_uid_set_nth("", 0, &uid));
	assert_false(imap_uid_set_nth("0", 0, &uid));
	assert_false(imap_uid_set_nth("5,", 1, &uid));
	assert_false(imap_uid_set_nth("5:", 0, &uid));
	assert_false(imap_uid_set_nth("x", 0, &uid));
}

static void test_uid_set_too_long_to_keep_still_gives_the_first(void **state)
{
	(void)state;
	char line[PUSH_IMAP_UID_SET_MAX * 2 + 64] = "A1 OK [APPENDUID 3 1";
	while (strlen(line) < PUSH_IMAP_UID_SET_MAX + 40)
		strcat(line, ",1");
	strcat(line, "] done");
	struct imap_reply r = parse_ok(line);
	assert_int_equal(r.code, IMAP_CODE_APPENDUID);
	assert_int_equal(r.uid, 1);
	assert_string_equal(r.uid_set, "");
}

static void test_garbled_appenduid_is_another_code(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("A3 OK [APPENDUID 0 1] x").code, IMAP_CODE_OTHER);
	assert_int_equal(parse_ok("A3 OK [APPENDUID 1 0] x").code, IMAP_CODE_OTHER);
	assert_int_equal(parse_ok("A3 OK [APPENDUID 1] x").code, IMAP_CODE_OTHER);
	assert_int_equal(parse_ok("A3 OK [APPENDUID 4294967296 1] x").code, IMAP_CODE_OTHER);
	assert_int_equal(parse_ok("A3 OK [APPENDUID] x").code, IMAP_CODE_OTHER);
	assert_int_equal(parse_ok("A3 OK [APPENDUIDX 1 2] x").code, IMAP_CODE_OTHER);
}

static void test_refusal_codes(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("A4 NO [TOOBIG] Mail size is too large").code, IMAP_CODE_TOOBIG);
	assert_int_equal(parse_ok("A4 NO [PARSE] bad").code, IMAP_CODE_PARSE);
	assert_int_equal(parse_ok("A4 NO [CANNOT] never").code, IMAP_CODE_CANNOT);
	assert_int_equal(parse_ok("A4 NO [OVERQUOTA] full").code, IMAP_CODE_OVERQUOTA);
	assert_int_equal(parse_ok("A4 NO [LIMIT] many").code, IMAP_CODE_LIMIT);
	assert_int_equal(parse_ok("A4 NO [TRYCREATE] Mailbox doesn't exist: X").code,
		IMAP_CODE_TRYCREATE);
	assert_int_equal(parse_ok("A5 NO [NONEXISTENT] Mailbox doesn't exist: Junk").code,
		IMAP_CODE_NONEXISTENT);
	assert_int_equal(parse_ok("A6 NO [ALREADYEXISTS] Mailbox already exists").code,
		IMAP_CODE_ALREADYEXISTS);
	assert_int_equal(parse_ok("A4 NO [READ-ONLY] x").code, IMAP_CODE_OTHER);
}

static void test_login_codes(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("A1 NO [AUTHENTICATIONFAILED] Authentication failed.");
	assert_int_equal(r.code, IMAP_CODE_AUTHENTICATIONFAILED);
	assert_string_equal(r.text, "Authentication failed.");
	assert_int_equal(parse_ok("A1 NO [UNAVAILABLE] Temporary failure").code,
		IMAP_CODE_UNAVAILABLE);
	assert_int_equal(parse_ok("A1 NO [AUTHORIZATIONFAILED] x").code,
		IMAP_CODE_AUTHORIZATIONFAILED);
	assert_int_equal(parse_ok("A1 NO [EXPIRED] x").code, IMAP_CODE_EXPIRED);
}

static void test_unclosed_code_is_text(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("A1 NO [TOOBIG no bracket");
	assert_int_equal(r.code, IMAP_CODE_NONE);
	assert_string_equal(r.text, "[TOOBIG no bracket");
}

static void test_continuations(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("+ OK");
	assert_int_equal(r.kind, IMAP_REPLY_CONTINUATION);
	assert_string_equal(r.text, "OK");
	r = parse_ok("+");
	assert_int_equal(r.kind, IMAP_REPLY_CONTINUATION);
	assert_string_equal(r.text, "");
	/* A SASL challenge: base64, kept as text. */
	r = parse_ok("+ eyJzdGF0dXMiOiI0MDEifQ==");
	assert_string_equal(r.text, "eyJzdGF0dXMiOiI0MDEifQ==");
	assert_false(r.literal);
}

static void test_search_results(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* SEARCH");
	assert_int_equal(r.data, IMAP_DATA_SEARCH);
	assert_int_equal(r.search_count, 0);
	r = parse_ok("* SEARCH 5 17 4294967295");
	assert_int_equal(r.data, IMAP_DATA_SEARCH);
	assert_int_equal(r.search_count, 3);
	assert_int_equal(r.search_first, 5);
	r = parse_ok("* SEARCH 3 (MODSEQ 917162500)");
	assert_int_equal(r.search_count, 1);
	/* A number too large for a UID stops the count. */
	r = parse_ok("* SEARCH 4294967296");
	assert_int_equal(r.search_count, 0);
}

static void test_list_response(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* LIST (\\HasNoChildren \\Junk) \"/\" Junk");
	assert_int_equal(r.kind, IMAP_REPLY_UNTAGGED);
	assert_int_equal(r.data, IMAP_DATA_LIST);
	/* A name sent as a literal. */
	r = parse_ok("* LIST () \"/\" {4}");
	assert_int_equal(r.data, IMAP_DATA_LIST);
	assert_true(r.literal);
	assert_int_equal(r.literal_size, 4);
}

static void test_other_data_is_ignored(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* 23 EXISTS");
	assert_int_equal(r.kind, IMAP_REPLY_UNTAGGED);
	assert_int_equal(r.status, IMAP_STATUS_NONE);
	assert_int_equal(r.data, IMAP_DATA_NONE);
	r = parse_ok("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
	assert_int_equal(r.data, IMAP_DATA_NONE);
	assert_false(r.literal);
}

static void test_literal_in_data_is_announced(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("* 1 FETCH (BODY[HEADER] {342}");
	assert_true(r.literal);
	assert_int_equal(r.literal_size, 342);
	r = parse_ok("* LIST () \"/\" {5}");
	assert_true(r.literal);
	assert_int_equal(r.literal_size, 5);
	r = parse_ok("* 1 FETCH (BINARY[] ~{0}");
	assert_true(r.literal);
	assert_int_equal(r.literal_size, 0);
	/* Too large to read: still a literal, refused by size by the client. */
	r = parse_ok("* 1 FETCH (BODY[] {99999999999999999999999}");
	assert_true(r.literal);
	assert_true(r.literal_size == UINT64_MAX);
}

static void test_status_text_never_holds_a_literal(void **state)
{
	(void)state;
	/* resp-text is text (RFC 9051 9): a "{5}" there is words, not a literal. */
	assert_false(parse_ok("A1 OK done {5}").literal);
	assert_false(parse_ok("* OK hello {5}").literal);
	assert_false(parse_ok("+ {5}").literal);
}

static void test_trailing_literal_of_further_pieces(void **state)
{
	(void)state;
	uint64_t size = 0;
	assert_true(imap_reply_trailing_literal(" \"b\" {12}", 9, &size));
	assert_int_equal(size, 12);
	assert_true(imap_reply_trailing_literal("{7+}", 4, &size));
	assert_int_equal(size, 7);
	assert_false(imap_reply_trailing_literal(")", 1, &size));
	assert_false(imap_reply_trailing_literal("{}", 2, &size));
	assert_false(imap_reply_trailing_literal("12}", 3, &size));
	assert_false(imap_reply_trailing_literal("{x}", 3, &size));
	assert_false(imap_reply_trailing_literal("", 0, &size));
}

static void test_text_is_sanitised_and_bounded(void **state)
{
	(void)state;
	struct imap_reply r = parse_ok("A1 NO bad\x01 \xc3\xa9t\x7f");
	assert_string_equal(r.text, "bad? ??t?");
	char line[PUSH_DETAIL_MAX * 2 + 16];
	memcpy(line, "A1 NO ", 6);
	memset(line + 6, 'x', PUSH_DETAIL_MAX * 2);
	struct imap_reply big;
	assert_true(imap_reply_parse(line, 6 + PUSH_DETAIL_MAX * 2, &big));
	assert_int_equal(strlen(big.text), PUSH_DETAIL_MAX);
}

static void test_parser_reads_only_the_length_given(void **state)
{
	(void)state;
	/* No NUL terminator is needed: the line is cut off right after "A1 OK". */
	const char buf[] = "A1 OKAY";
	struct imap_reply r;
	assert_true(imap_reply_parse(buf, 5, &r));
	assert_int_equal(r.status, IMAP_STATUS_OK);
	assert_false(imap_reply_parse(buf, 7, &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tagged_ok_with_text),
		cmocka_unit_test(test_status_words_are_case_insensitive),
		cmocka_unit_test(test_tagged_bye_or_preauth_is_not_a_response),
		cmocka_unit_test(test_tag_too_long_or_with_bad_characters_is_refused),
		cmocka_unit_test(test_untagged_status_responses),
		cmocka_unit_test(test_dovecot_greeting_capabilities),
		cmocka_unit_test(test_capability_data_response),
		cmocka_unit_test(test_appendlimit_without_value_or_garbled_sets_no_limit),
		cmocka_unit_test(test_capability_atoms_must_match_whole),
		cmocka_unit_test(test_capability_count_is_bounded),
		cmocka_unit_test(test_new_capability_list_replaces_the_old),
		cmocka_unit_test(test_appenduid),
		cmocka_unit_test(test_uid_set_nth_names_each_message_of_a_multiappend),
		cmocka_unit_test(test_uid_set_too_long_to_keep_still_gives_the_first),
		cmocka_unit_test(test_garbled_appenduid_is_another_code),
		cmocka_unit_test(test_refusal_codes),
		cmocka_unit_test(test_login_codes),
		cmocka_unit_test(test_unclosed_code_is_text),
		cmocka_unit_test(test_continuations),
		cmocka_unit_test(test_search_results),
		cmocka_unit_test(test_list_response),
		cmocka_unit_test(test_other_data_is_ignored),
		cmocka_unit_test(test_literal_in_data_is_announced),
		cmocka_unit_test(test_status_text_never_holds_a_literal),
		cmocka_unit_test(test_trailing_literal_of_further_pieces),
		cmocka_unit_test(test_text_is_sanitised_and_bounded),
		cmocka_unit_test(test_parser_reads_only_the_length_given),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
