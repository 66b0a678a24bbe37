/* test_net_line.c: line framing with the limit at the read (src/net/line.c), fed whole and a
 * byte at a time, so a bug at a buffer boundary shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "net/line.h"

#define MAX 8

/* What a reader made of some input: the lines it took, "!" for a too-long one (followed by
 * the octets of it kept, if any), separated by "|". */
struct outcome {
	char text[512];
	size_t left; /* octets still buffered at the end */
};

static void take_lines(struct net_line_reader *r, struct evbuffer *in, struct outcome *o)
{
	char line[MAX + 1];
	size_t len;
	enum net_line_result got;

	while ((got = net_line_read(r, in, line, &len)) != NET_LINE_NONE) {
		assert_true(len <= MAX);
		assert_int_equal(line[len], '\0');
		size_t used = strlen(o->text);
		snprintf(o->text + used, sizeof(o->text) - used, "%s%s|",
			got == NET_LINE_TOO_LONG ? "!" : "", line);
	}
}

/* Feeds input all at once, or in pieces of step octets, with the lines taken after each. */
static struct outcome frame(const char *input, size_t step)
{
	struct net_line_reader r;
	struct evbuffer *in = evbuffer_new();
	struct outcome o = {"", 0};
	size_t len = strlen(input);

	net_line_reader_init(&r, MAX);
	for (size_t i = 0; i < len; i += step) {
		evbuffer_add(in, input + i, len - i < step ? len - i : step);
		take_lines(&r, in, &o);
		/* Memory stays bounded whatever the input: the limit applies at the read. */
		assert_true(evbuffer_get_length(in) <= MAX + 1);
	}
	o.left = evbuffer_get_length(in);
	evbuffer_free(in);
	return o;
}

static void assert_framed(const char *input, const char *expected, size_t left)
{
	size_t steps[] = {SIZE_MAX, 1, 2, 3, 7};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t step = steps[i] == SIZE_MAX ? strlen(input) + 1 : steps[i];
		struct outcome o = frame(input, step);
		assert_string_equal(o.text, expected);
		assert_int_equal(o.left, left);
	}
}

static void test_crlf_ends_a_line_and_is_not_part_of_it(void **state)
{
	(void)state;
	assert_framed("HELO a\r\nQUIT\r\n", "HELO a|QUIT|", 0);
}

static void test_bare_lf_ends_a_line_too(void **state)
{
	(void)state;
	assert_framed("NOOP\nQUIT\r\n", "NOOP|QUIT|", 0);
}

static void test_empty_line_is_a_line(void **state)
{
	(void)state;
	assert_framed("\r\nX\r\n", "|X|", 0);
}

static void test_incomplete_line_waits_for_its_end(void **state)
{
	(void)state;
	assert_framed("DATA\r\nMAIL", "DATA|", 4);
}

static void test_line_of_exactly_the_limit_is_taken(void **state)
{
	(void)state;
	assert_framed("12345678\r\nNEXT\r\n", "12345678|NEXT|", 0);
}

static void test_cr_of_a_line_at_the_limit_may_wait_for_its_lf(void **state)
{
	(void)state;
	/* Nine octets buffered (the line and its CR) are not yet too many. */
	assert_framed("12345678\r", "", 9);
}

static void test_line_one_over_the_limit_is_too_long(void **state)
{
	struct outcome o = frame("123456789\r\nNEXT\r\n", 100);

	(void)state;
	/* Complete in the buffer: its first MAX octets are kept for the caller to show. */
	assert_string_equal(o.text, "!12345678|NEXT|");
}

static void test_streamed_overlong_line_is_dropped_and_reported_once(void **state)
{
	struct outcome o = frame("0123456789abcdefghij\r\nNEXT\r\n", 1);

	(void)state;
	/* Its start was thrown away as it came in: reported without octets, then framing goes
	 * on with the next line. */
	assert_string_equal(o.text, "!|NEXT|");
	assert_int_equal(o.left, 0);
}

static void test_reader_marks_a_line_being_discarded(void **state)
{
	struct net_line_reader r;
	struct evbuffer *in = evbuffer_new();
	char line[MAX + 1];
	size_t len;

	(void)state;
	net_line_reader_init(&r, MAX);
	evbuffer_add(in, "0123456789", 10);
	assert_int_equal(net_line_read(&r, in, line, &len), NET_LINE_NONE);
	assert_true(r.discarding);
	assert_int_equal(evbuffer_get_length(in), 0);
	evbuffer_add(in, "xyz\r\nOK\r\n", 9);
	assert_int_equal(net_line_read(&r, in, line, &len), NET_LINE_TOO_LONG);
	assert_int_equal(len, 0);
	assert_false(r.discarding);
	assert_int_equal(net_line_read(&r, in, line, &len), NET_LINE_OK);
	assert_string_equal(line, "OK");
	evbuffer_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf_ends_a_line_and_is_not_part_of_it),
		cmocka_unit_test(test_bare_lf_ends_a_line_too),
		cmocka_unit_test(test_empty_line_is_a_line),
		cmocka_unit_test(test_incomplete_line_waits_for_its_end),
		cmocka_unit_test(test_line_of_exactly_the_limit_is_taken),
		cmocka_unit_test(test_cr_of_a_line_at_the_limit_may_wait_for_its_lf),
		cmocka_unit_test(test_line_one_over_the_limit_is_too_long),
		cmocka_unit_test(test_streamed_overlong_line_is_dropped_and_reported_once),
		cmocka_unit_test(test_reader_marks_a_line_being_discarded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
