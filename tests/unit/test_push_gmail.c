/* test_push_gmail.c: the pure parts of the Gmail transport (src/push/gmail.c): the multipart
 * upload body, Google's answers as push verdicts, messages.list answers; and the URL encoding
 * of src/push/http.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "push/gmail.h"
#include "push/http.h"
#include "strbuf.h"

static void test_multipart_body_carries_labels_then_the_message(void **state)
{
	struct strbuf prefix, suffix;

	(void)state;
	strbuf_init(&prefix);
	strbuf_init(&suffix);
	gmail_multipart_build("b0undary", false, &prefix, &suffix);
	assert_string_equal(prefix.data,
		"--b0undary\r\n"
		"Content-Type: application/json; charset=UTF-8\r\n"
		"\r\n"
		"{\"labelIds\":[\"INBOX\",\"UNREAD\"]}\r\n"
		"--b0undary\r\n"
		"Content-Type: message/rfc822\r\n"
		"\r\n");
	assert_string_equal(suffix.data, "\r\n--b0undary--\r\n");
	strbuf_free(&prefix);
	strbuf_free(&suffix);
}

static void test_junk_is_labelled_spam_instead_of_inbox(void **state)
{
	struct strbuf prefix, suffix;

	(void)state;
	strbuf_init(&prefix);
	strbuf_init(&suffix);
	gmail_multipart_build("b", true, &prefix, &suffix);
	assert_non_null(strstr(prefix.data, "{\"labelIds\":[\"SPAM\",\"UNREAD\"]}"));
	assert_null(strstr(prefix.data, "INBOX"));
	strbuf_free(&prefix);
	strbuf_free(&suffix);
}

/* RFC 2046 5.1.1: 1 to 70 characters from bchars; a new one every time. */
static void test_boundaries_are_fresh_and_valid(void **state)
{
	char a[64], b[64];

	(void)state;
	gmail_new_boundary(a, sizeof(a));
	gmail_new_boundary(b, sizeof(b));
	assert_string_not_equal(a, b);
	assert_true(strlen(a) >= 27 && strlen(a) <= 70);
	assert_int_equal(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789-"), strlen(a));
}

static enum push_status verdict(long status, const char *body, char *id, char *detail)
{
	return gmail_verdict(status, body, strlen(body), id, id != NULL ? 65 : 0, detail, 201);
}

static void test_google_answers_become_push_verdicts(void **state)
{
	char id[65] = "", detail[201];

	(void)state;
	assert_int_equal(verdict(200, "{\"id\":\"18c2f\",\"threadId\":\"18c2f\",\"labelIds\":"
		"[\"INBOX\"]}", id, detail), PUSH_OK);
	assert_string_equal(id, "18c2f");
	assert_int_equal(verdict(200, "{\"threadId\":\"t\"}", id, detail), PUSH_TEMPORARY);
	assert_int_equal(verdict(200, "<html>", id, detail), PUSH_TEMPORARY);

	assert_int_equal(verdict(401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
		"authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}", id, detail),
		PUSH_AUTH);
	assert_int_equal(verdict(403, "{\"error\":{\"code\":403,\"message\":\"Request had "
		"insufficient authentication scopes.\",\"errors\":[{\"reason\":"
		"\"insufficientPermissions\"}],\"status\":\"PERMISSION_DENIED\"}}", id, detail),
		PUSH_AUTH);
	assert_string_equal(detail, "HTTP 403 insufficientPermissions: Request had insufficient "
		"authentication scopes.");
	assert_int_equal(verdict(403, "{\"error\":{\"code\":403,\"message\":\"User-rate limit "
		"exceeded.\",\"errors\":[{\"reason\":\"userRateLimitExceeded\"}]}}", id, detail),
		PUSH_TEMPORARY);
	assert_int_equal(verdict(403, "{\"error\":{\"code\":403,\"errors\":[{\"reason\":"
		"\"dailyLimitExceeded\"}]}}", id, detail), PUSH_TEMPORARY);
	assert_int_equal(verdict(403, "{\"error\":{\"code\":403,\"status\":\"RESOURCE_EXHAUSTED\"}}",
		id, detail), PUSH_TEMPORARY);
	assert_int_equal(verdict(429, "{\"error\":{\"code\":429,\"errors\":[{\"reason\":"
		"\"rateLimitExceeded\"}]}}", id, detail), PUSH_TEMPORARY);
	assert_int_equal(verdict(500, "{\"error\":{\"code\":500,\"message\":\"Backend Error\"}}",
		id, detail), PUSH_TEMPORARY);
	assert_string_equal(detail, "HTTP 500: Backend Error");
	assert_int_equal(verdict(502, "<html>bad gateway</html>", id, detail), PUSH_TEMPORARY);
	assert_string_equal(detail, "HTTP 502");
	assert_int_equal(verdict(400, "{\"error\":{\"code\":400,\"message\":\"Invalid message\"}}",
		id, detail), PUSH_REFUSED);
	assert_int_equal(verdict(413, "", id, detail), PUSH_REFUSED);
	/* A wrong GmailAPIURL is the operator's to mend, not the message's fault. */
	assert_int_equal(verdict(404, "", id, detail), PUSH_TEMPORARY);
}

static void test_an_overlong_id_is_not_truncated_into_a_wrong_one(void **state)
{
	char id[8] = "", detail[201];
	const char *body = "{\"id\":\"0123456789abcdef\"}";

	(void)state;
	assert_int_equal(gmail_verdict(200, body, strlen(body), id, sizeof(id), detail,
		sizeof(detail)), PUSH_TEMPORARY);
	assert_string_equal(id, "");
}

static void test_list_answers_say_whether_a_message_is_there(void **state)
{
	const char *found = "{\"messages\":[{\"id\":\"a\",\"threadId\":\"a\"}],"
		"\"resultSizeEstimate\":1}";
	const char *none = "{\"resultSizeEstimate\":0}";
	const char *odd = "{\"messages\":{}}";

	(void)state;
	assert_int_equal(gmail_list_found(found, strlen(found)), 1);
	assert_int_equal(gmail_list_found(none, strlen(none)), 0);
	assert_int_equal(gmail_list_found(odd, strlen(odd)), -1);
	assert_int_equal(gmail_list_found("x", 1), -1);
}

static void test_form_encoding_keeps_only_unreserved_characters(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	http_append_param(&sb, "q", "rfc822msgid:a+b@example.org");
	http_append_param(&sb, "redirect_uri", "http://127.0.0.1:8080");
	http_append_param(&sb, "x", "A-Z_a.z~0 9/");
	assert_string_equal(sb.data, "q=rfc822msgid%3Aa%2Bb%40example.org"
		"&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080&x=A-Z_a.z~0%209%2F");
	strbuf_reset(&sb);
	strbuf_append_str(&sb, "https://h/p?");
	http_append_param(&sb, "a", "1");
	assert_string_equal(sb.data, "https://h/p?a=1");
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multipart_body_carries_labels_then_the_message),
		cmocka_unit_test(test_junk_is_labelled_spam_instead_of_inbox),
		cmocka_unit_test(test_boundaries_are_fresh_and_valid),
		cmocka_unit_test(test_google_answers_become_push_verdicts),
		cmocka_unit_test(test_an_overlong_id_is_not_truncated_into_a_wrong_one),
		cmocka_unit_test(test_list_answers_say_whether_a_message_is_there),
		cmocka_unit_test(test_form_encoding_keeps_only_unreserved_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
