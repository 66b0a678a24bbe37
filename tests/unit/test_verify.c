/* test_verify.c: the head rewrite of the sender checks (verify_rewrite_head): our
 * Authentication-Results on top, forged ones claiming our authserv-id removed, the milter's
 * header changes applied with the indices it saw, and nothing else of the head touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "filter/milter.h"
#include "strbuf.h"
#include "verify/verify.h"

#define OURS "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@b.test\r\n"
#define TRACE "Return-Path: <a@b.test>\r\nDelivered-To: x@example.org\r\nReceived: from c\r\n"

static void rewrite(const char *lead, const char *head, const struct milter_change *changes,
	size_t count, size_t shift_from, long shift, const char *want)
{
	struct strbuf out;

	strbuf_init(&out);
	verify_rewrite_head(lead, head, strlen(head), "mx.example.org", changes, count, shift_from,
		shift, &out);
	strbuf_append(&out, "", 1);
	assert_string_equal(out.data, want);
	strbuf_free(&out);
}

static void test_ours_on_top_and_the_rest_untouched(void **state)
{
	(void)state;
	rewrite(OURS, TRACE "Subject: hi\r\n\r\n", NULL, 0, 0, 0,
		OURS TRACE "Subject: hi\r\n\r\n");
	/* No field of ours (VerifySenders off, a milter changing nothing): as it was. */
	rewrite("", TRACE "Subject: hi\r\n\r\n", NULL, 0, 0, 0, TRACE "Subject: hi\r\n\r\n");
}

static void test_forged_fields_claiming_our_id_are_removed_others_kept(void **state)
{
	(void)state;
	rewrite(OURS, TRACE
		"Authentication-Results: mx.example.org; spf=pass\r\n"
		"Authentication-Results: other.example; dkim=pass\r\n"
		"authentication-results:MX.EXAMPLE.ORG 1;\r\n\tdmarc=pass\r\n"
		"Authentication-Results: mx.example.org.evil; dkim=pass\r\n"
		"X-Authentication-Results: mx.example.org; spf=pass\r\n"
		"Subject: hi\r\n\r\n", NULL, 0, 0, 0,
		OURS TRACE
		"Authentication-Results: other.example; dkim=pass\r\n"
		"Authentication-Results: mx.example.org.evil; dkim=pass\r\n"
		"X-Authentication-Results: mx.example.org; spf=pass\r\n"
		"Subject: hi\r\n\r\n");
}

static void test_milter_changes_with_the_indices_the_milter_saw(void **state)
{
	/* The milter saw: 0 ours, 1 Return-Path, 2 Delivered-To, 3 Received, 4 Subject, 5 To. */
	struct milter_change changes[] = {
		{MILTER_ADD_HEADER, 0, "X-Spam", "yes"},
		{MILTER_INSERT_HEADER, 0, "X-First", "first"},
		{MILTER_INSERT_HEADER, 5, "X-Before-Subject", "value"},
		{MILTER_CHANGE_HEADER, 1, "Subject", "[SPAM] hi"},
		{MILTER_CHANGE_HEADER, 1, "To", ""},
		{MILTER_CHANGE_HEADER, 2, "Subject", "absent: added"},
		{MILTER_ADD_HEADER, 0, "Bad Name", "dropped"},
		{MILTER_ADD_HEADER, 0, "Bad:Name", "dropped"},
		{MILTER_ADD_HEADER, 0, "X-Folded", "line one\n\tline two\nline three\r\n"},
	};

	(void)state;
	rewrite(OURS, TRACE "Subject: hi\r\nTo: x@example.org\r\n\r\n", changes,
		sizeof(changes) / sizeof(changes[0]), 4, 0,
		"X-First: first\r\n" OURS TRACE "X-Before-Subject: value\r\n"
		"Subject: [SPAM] hi\r\nX-Spam: yes\r\nSubject: absent: added\r\n"
		"X-Folded: line one\r\n\tline two\r\n\tline three\r\n\r\n");
}

/* A second maildrop's copy has one Delivered-To more: an insert after the trace headers moves
 * with them, one inside them does not. */
static void test_milter_indices_shift_with_this_copys_trace_headers(void **state)
{
	struct milter_change changes[] = {
		{MILTER_INSERT_HEADER, 4, "X-After-Trace", "1"},
		{MILTER_INSERT_HEADER, 1, "X-Top", "2"},
	};

	(void)state;
	rewrite(OURS, "Return-Path: <a@b.test>\r\nDelivered-To: x@example.org\r\n"
		"Delivered-To: y@example.org\r\nReceived: from c\r\nSubject: hi\r\n\r\n",
		changes, 2, 4, 1,
		OURS "X-Top: 2\r\nReturn-Path: <a@b.test>\r\nDelivered-To: x@example.org\r\n"
		"Delivered-To: y@example.org\r\nReceived: from c\r\nX-After-Trace: 1\r\n"
		"Subject: hi\r\n\r\n");
}

static void test_a_message_of_headers_only(void **state)
{
	struct milter_change add = {MILTER_ADD_HEADER, 0, "X-Spam", "no"};

	(void)state;
	rewrite(OURS, TRACE "Subject: hi\r\n", &add, 1, 4, 0,
		OURS TRACE "Subject: hi\r\nX-Spam: no\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ours_on_top_and_the_rest_untouched),
		cmocka_unit_test(test_forged_fields_claiming_our_id_are_removed_others_kept),
		cmocka_unit_test(test_milter_changes_with_the_indices_the_milter_saw),
		cmocka_unit_test(test_milter_indices_shift_with_this_copys_trace_headers),
		cmocka_unit_test(test_a_message_of_headers_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
