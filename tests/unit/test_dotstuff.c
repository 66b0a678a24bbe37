/* test_dotstuff.c: the dot-stuffing filter and its size count (src/mail/dotstuff.c), fed in
 * chunks of every size down to one byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/dotstuff.h"
#include "strbuf.h"

/* ---- dot-stuffing filter ---- */

/* Runs the filter over input, chunk octets at a time (0 = all at once). */
static char *dotstuff_run_chunks(const char *input, size_t len, long lines, size_t chunk)
{
	struct dotstuff f;
	struct strbuf sb;
	size_t at = 0;

	strbuf_init(&sb);
	dotstuff_init(&f, lines);
	if (chunk == 0)
		chunk = len ? len : 1;
	while (at < len) {
		size_t n = len - at < chunk ? len - at : chunk;

		if (!dotstuff_feed(&f, input + at, n, &sb))
			break;
		at += n;
	}
	dotstuff_finish(&f, &sb);
	return sb.data;
}

/* The output must not depend on how the input is cut: whole, byte by byte, and every
 * two-chunk split must agree with expect. */
static void assert_dotstuff(const char *input, long lines, const char *expect)
{
	size_t len = strlen(input);
	char *got = dotstuff_run_chunks(input, len, lines, 0);

	assert_string_equal(got, expect);
	free(got);
	got = dotstuff_run_chunks(input, len, lines, 1);
	assert_string_equal(got, expect);
	free(got);
	for (size_t split = 1; split < len; split++) {
		struct dotstuff f;
		struct strbuf sb;

		strbuf_init(&sb);
		dotstuff_init(&f, lines);
		if (dotstuff_feed(&f, input, split, &sb))
			dotstuff_feed(&f, input + split, len - split, &sb);
		dotstuff_finish(&f, &sb);
		assert_string_equal(sb.data, expect);
		strbuf_free(&sb);
	}
}

static void test_dotstuff_passes_crlf_message_unchanged(void **state)
{
	(void)state;
	assert_dotstuff("Subject: hi\r\n\r\nbody\r\n", -1, "Subject: hi\r\n\r\nbody\r\n.\r\n");
}

static void test_dotstuff_doubles_leading_dots(void **state)
{
	(void)state;
	assert_dotstuff(".\r\n..x\r\na.b\r\n.\r\n", -1, "..\r\n...x\r\na.b\r\n..\r\n.\r\n");
	assert_dotstuff(".start", -1, "..start\r\n.\r\n");
}

static void test_dotstuff_dot_after_crlf_split_across_chunks(void **state)
{
	char *got;

	(void)state;
	got = dotstuff_run_chunks("a\r\n.\r\n", 6, -1, 3); /* "a\r\n" | ".\r\n" */
	assert_string_equal(got, "a\r\n..\r\n.\r\n");
	free(got);
	got = dotstuff_run_chunks("a\r\n.\r\n", 6, -1, 2); /* "a\r" | "\n." | "\r\n" */
	assert_string_equal(got, "a\r\n..\r\n.\r\n");
	free(got);
}

static void test_dotstuff_converts_bare_lf_to_crlf(void **state)
{
	(void)state;
	assert_dotstuff("Subject: old\n\n.dot\nend\n", -1,
		"Subject: old\r\n\r\n..dot\r\nend\r\n.\r\n");
}

static void test_dotstuff_adds_crlf_when_missing_at_end(void **state)
{
	(void)state;
	assert_dotstuff("Subject: x\r\n\r\nlast", -1, "Subject: x\r\n\r\nlast\r\n.\r\n");
}

static void test_dotstuff_trailing_cr_gets_only_lf(void **state)
{
	(void)state;
	assert_dotstuff("a\r\nb\r", -1, "a\r\nb\r\n.\r\n");
}

static void test_dotstuff_bare_cr_is_content(void **state)
{
	(void)state;
	/* "\r\r\n" is a line holding one CR, not the empty line ending the headers. */
	assert_dotstuff("A: 1\r\n\r\r\nB: 2\r\n\r\nbody\r\nmore\r\n", 0,
		"A: 1\r\n\r\r\nB: 2\r\n\r\n.\r\n");
	assert_dotstuff("x\r.y\r\n", -1, "x\r.y\r\n.\r\n");
}

static void test_dotstuff_empty_message(void **state)
{
	(void)state;
	assert_dotstuff("", -1, ".\r\n");
	assert_dotstuff("", 0, ".\r\n");
}

static void test_dotstuff_top_zero_sends_headers_and_blank_line(void **state)
{
	(void)state;
	assert_dotstuff("From: a\r\nTo: b\r\n\r\nline 1\r\nline 2\r\n", 0,
		"From: a\r\nTo: b\r\n\r\n.\r\n");
}

static void test_dotstuff_top_counts_body_lines(void **state)
{
	(void)state;
	assert_dotstuff("From: a\r\n\r\nline 1\r\n\r\n.line 3\r\nline 4\r\n", 3,
		"From: a\r\n\r\nline 1\r\n\r\n..line 3\r\n.\r\n");
	assert_dotstuff("From: a\n\nline 1\nline 2\n", 1, "From: a\r\n\r\nline 1\r\n.\r\n");
}

static void test_dotstuff_top_beyond_body_sends_everything(void **state)
{
	(void)state;
	assert_dotstuff("From: a\r\n\r\none\r\ntwo", 100, "From: a\r\n\r\none\r\ntwo\r\n.\r\n");
}

static void test_dotstuff_top_without_body_sends_headers(void **state)
{
	(void)state;
	assert_dotstuff("From: a\r\nTo: b\r\n", 0, "From: a\r\nTo: b\r\n.\r\n");
}

static void test_dotstuff_top_stops_asking_for_input(void **state)
{
	struct dotstuff f;
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	dotstuff_init(&f, 1);
	assert_true(dotstuff_feed(&f, "H: 1\r\n\r\n", 8, &sb));
	assert_false(dotstuff_feed(&f, "one\r\ntwo\r\n", 10, &sb));
	assert_false(dotstuff_feed(&f, "three\r\n", 7, &sb));
	dotstuff_finish(&f, &sb);
	assert_string_equal(sb.data, "H: 1\r\n\r\none\r\n.\r\n");
	strbuf_free(&sb);
}

/* ---- RETR sizes: what the filter sends equals what LIST/STAT announce (RFC 1939 5, 11) ---- */

/* Counts input the way the store does for LIST, chunk octets at a time (0 = all at once). */
static uint64_t dotstuff_size_chunks(const char *input, size_t len, size_t chunk)
{
	struct dotstuff_size z;
	size_t at = 0;

	dotstuff_size_init(&z);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (; at < len; at += chunk)
		dotstuff_size_feed(&z, input + at, len - at < chunk ? len - at : chunk);
	return dotstuff_size_finish(&z);
}

/* The RETR response for input, less the terminator and the stuffed dots, is expect_size octets
 * long, and the count agrees however the input is cut. */
static void assert_size_matches_retr(const char *input, uint64_t expect_size)
{
	size_t len = strlen(input);
	char *sent = dotstuff_run_chunks(input, len, -1, 0);
	size_t sent_len = strlen(sent) - 3; /* ".\r\n" */
	size_t stuffed = 0;

	for (size_t i = 0; i < sent_len; i++)
		if (sent[i] == '.' && (i == 0 || sent[i - 1] == '\n'))
			stuffed++;
	assert_int_equal(sent_len - stuffed, expect_size);
	free(sent);
	assert_int_equal(dotstuff_size_chunks(input, len, 0), expect_size);
	assert_int_equal(dotstuff_size_chunks(input, len, 1), expect_size);
	for (size_t split = 1; split < len; split++) {
		struct dotstuff_size z;

		dotstuff_size_init(&z);
		dotstuff_size_feed(&z, input, split);
		dotstuff_size_feed(&z, input + split, len - split);
		assert_int_equal(dotstuff_size_finish(&z), expect_size);
	}
}

static void test_size_of_crlf_message_is_its_length(void **state)
{
	(void)state;
	assert_size_matches_retr("Subject: hi\r\n\r\n.body\r\n", 22);
}

static void test_size_counts_bare_lf_as_crlf(void **state)
{
	(void)state;
	assert_size_matches_retr("From: a\nSubject: lf\n\nline one\n.\nline three\n",
		43 + 6);
}

static void test_size_counts_missing_final_line_end(void **state)
{
	(void)state;
	assert_size_matches_retr("Subject: x\r\n\r\nlast line", 23 + 2);
	assert_size_matches_retr("a\nb", 3 + 1 + 2);
}

static void test_size_counts_only_lf_after_trailing_cr(void **state)
{
	(void)state;
	assert_size_matches_retr("a\r\nb\r", 5 + 1);
	assert_size_matches_retr("x\r.y\r\n", 6);
	assert_size_matches_retr("x\r\r\n", 4);
}

static void test_size_of_empty_message_is_zero(void **state)
{
	(void)state;
	assert_size_matches_retr("", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dotstuff_passes_crlf_message_unchanged),
		cmocka_unit_test(test_dotstuff_doubles_leading_dots),
		cmocka_unit_test(test_dotstuff_dot_after_crlf_split_across_chunks),
		cmocka_unit_test(test_dotstuff_converts_bare_lf_to_crlf),
		cmocka_unit_test(test_dotstuff_adds_crlf_when_missing_at_end),
		cmocka_unit_test(test_dotstuff_trailing_cr_gets_only_lf),
		cmocka_unit_test(test_dotstuff_bare_cr_is_content),
		cmocka_unit_test(test_dotstuff_empty_message),
		cmocka_unit_test(test_dotstuff_top_zero_sends_headers_and_blank_line),
		cmocka_unit_test(test_dotstuff_top_counts_body_lines),
		cmocka_unit_test(test_dotstuff_top_beyond_body_sends_everything),
		cmocka_unit_test(test_dotstuff_top_without_body_sends_headers),
		cmocka_unit_test(test_dotstuff_top_stops_asking_for_input),
		cmocka_unit_test(test_size_of_crlf_message_is_its_length),
		cmocka_unit_test(test_size_counts_bare_lf_as_crlf),
		cmocka_unit_test(test_size_counts_missing_final_line_end),
		cmocka_unit_test(test_size_counts_only_lf_after_trailing_cr),
		cmocka_unit_test(test_size_of_empty_message_is_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
