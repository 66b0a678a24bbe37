/* test_envelope.c: the envelope codec (src/queue/envelope.c): an entry written as JSON text
 * and read back is the same entry, and text that is not an envelope we wrote is refused with
 * a message saying where. No files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "queue/envelope.h"

static void make_entry(struct spool_entry *e)
{
	struct spool_recipient *r;

	spool_entry_init(e, "0123456789abcde", "alice@example.org", 1700000000);
	e->ret = SPOOL_RET_HDRS;
	spool_set_string(&e->envid, "env-1");
	e->body_8bit = true;
	e->attempts = 2;
	spool_entry_add_recipient(e, "bob@example.net", "rfc822;bob@example.net",
		SPOOL_NOTIFY_SUCCESS | SPOOL_NOTIFY_DELAY);
	r = spool_entry_add_recipient(e, "carol@example.com", NULL, 0);
	r->state = SPOOL_RCPT_FAILED;
	spool_set_string(&r->last_error, "smtp; 550 5.1.1 no such user");
	spool_set_string(&r->status, "5.1.1");
	r->last_attempt = 1700000100;
}

static void test_an_entry_formats_and_parses_back_the_same(void **state)
{
	struct spool_entry e, back;
	char err[256] = "";
	char *text, *again;

	(void)state;
	make_entry(&e);
	text = spool_envelope_format(&e);
	assert_non_null(text);
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_int_equal(spool_envelope_parse(text, strlen(text), e.id, "env/X", &back, err,
		sizeof(err)), 0);
	assert_string_equal(back.sender, "alice@example.org");
	assert_string_equal(back.sender_domain, "example.org");
	assert_int_equal(back.ret, SPOOL_RET_HDRS);
	assert_string_equal(back.envid, "env-1");
	assert_int_equal(back.recipient_count, 2);
	assert_int_equal(back.recipients[0].notify, SPOOL_NOTIFY_SUCCESS | SPOOL_NOTIFY_DELAY);
	assert_string_equal(back.recipients[0].orcpt, "rfc822;bob@example.net");
	assert_int_equal(back.recipients[1].state, SPOOL_RCPT_FAILED);
	assert_int_equal(back.recipients[1].last_attempt, 1700000100);
	again = spool_envelope_format(&back);
	assert_string_equal(again, text);
	free(text);
	free(again);
	spool_entry_free(&e);
	spool_entry_free(&back);
}

static void test_what_cannot_be_stored_exactly_is_not_formatted(void **state)
{
	struct spool_entry e;

	(void)state;
	make_entry(&e);
	spool_set_string(&e.sender, "caf\xe9@example.org"); /* not UTF-8 */
	errno = 0;
	assert_null(spool_envelope_format(&e));
	assert_int_equal(errno, EINVAL);
	spool_entry_free(&e);
}

static void assert_refused(const char *text, const char *id, const char *message)
{
	struct spool_entry e = {.sender = (char *)"untouched"};
	char err[256] = "";

	assert_int_equal(spool_envelope_parse(text, strlen(text), id, "env/X", &e, err,
		sizeof(err)), -1);
	assert_string_equal(e.sender, "untouched");
	assert_non_null(strstr(err, message));
}

static void test_text_that_is_not_our_envelope_is_refused_with_where(void **state)
{
	struct spool_entry e;
	char *text;

	(void)state;
	assert_refused("{\"trunc", "X", "env/X: line 1");
	assert_refused("[]", "X", "env/X: top level: not an object");
	assert_refused("{\"version\": 1, \"version\": 1}", "X", "env/X: line 1");
	make_entry(&e);
	text = spool_envelope_format(&e);
	/* Renamed or copied: the id inside must match the file name. */
	assert_refused(text, "other", "env/X: id: does not match the file name");
	free(text);
	spool_entry_free(&e);
	assert_refused("{\"version\": 99}", "X", "version");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_entry_formats_and_parses_back_the_same),
		cmocka_unit_test(test_what_cannot_be_stored_exactly_is_not_formatted),
		cmocka_unit_test(test_text_that_is_not_our_envelope_is_refused_with_where),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
