/* test_strbuf.c: growable, length-tracked byte strings (src/strbuf.c): the length counts
 * every byte (NULs included), the data stays NUL-terminated, growth keeps what was there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

static void test_a_new_buffer_is_empty_and_owns_nothing(void **state)
{
	struct strbuf sb;

	(void)state;
	memset(&sb, 0xa5, sizeof(sb));
	strbuf_init(&sb);
	assert_null(sb.data);
	assert_int_equal(sb.len, 0);
	assert_int_equal(sb.cap, 0);
	strbuf_free(&sb); /* freeing an unused buffer is fine */
	assert_null(sb.data);
}

static void test_append_counts_every_byte_and_terminates(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append(&sb, "a\0b", 3);
	assert_int_equal(sb.len, 3);
	assert_memory_equal(sb.data, "a\0b", 4); /* the fourth byte is the terminator */
	assert_true(sb.cap >= sb.len + 1);
	strbuf_append_str(&sb, "cd");
	assert_int_equal(sb.len, 5);
	assert_memory_equal(sb.data, "a\0bcd", 6);
	strbuf_free(&sb);
}

static void test_appending_nothing_still_gives_a_string(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append(&sb, NULL, 0);
	assert_non_null(sb.data);
	assert_string_equal(sb.data, "");
	assert_int_equal(sb.len, 0);
	strbuf_append_str(&sb, "");
	assert_int_equal(sb.len, 0);
	strbuf_free(&sb);
}

static void test_growth_keeps_the_content(void **state)
{
	struct strbuf sb;
	char expected[20000];
	size_t n = 0;

	(void)state;
	strbuf_init(&sb);
	/* Pieces of every length 0..199: the buffer grows many times, across 64-byte steps. */
	for (size_t piece = 0; n + piece < sizeof(expected) && piece < 200; piece++) {
		char chunk[200];
		for (size_t i = 0; i < piece; i++)
			chunk[i] = (char)('A' + (n + i) % 26);
		memcpy(expected + n, chunk, piece);
		n += piece;
		strbuf_append(&sb, chunk, piece);
		assert_int_equal(sb.len, n);
		assert_true(sb.cap > sb.len);
		assert_int_equal(sb.data[sb.len], '\0');
	}
	assert_int_equal(n, 199 * 200 / 2);
	assert_memory_equal(sb.data, expected, n);
	strbuf_free(&sb);
}

static void test_one_append_larger_than_twice_the_capacity(void **state)
{
	struct strbuf sb;
	char big[1000];

	(void)state;
	memset(big, 'x', sizeof(big));
	strbuf_init(&sb);
	strbuf_append_str(&sb, "head:");
	strbuf_append(&sb, big, sizeof(big));
	assert_int_equal(sb.len, 5 + sizeof(big));
	assert_true(sb.cap >= sb.len + 1);
	assert_memory_equal(sb.data, "head:", 5);
	assert_memory_equal(sb.data + 5, big, sizeof(big));
	assert_int_equal(sb.data[sb.len], '\0');
	strbuf_free(&sb);
}

static void test_appendf_formats_and_appends(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_appendf(&sb, "%d %s", 250, "OK");
	strbuf_appendf(&sb, "%c%c", '\r', '\n');
	assert_string_equal(sb.data, "250 OK\r\n");
	assert_int_equal(sb.len, 8);
	strbuf_appendf(&sb, "%s", "");
	assert_int_equal(sb.len, 8);
	strbuf_free(&sb);
}

static void test_appendf_longer_than_the_first_allocation(void **state)
{
	struct strbuf sb;
	char expected[400];

	(void)state;
	memset(expected, 'z', 300);
	expected[300] = '\0';
	strbuf_init(&sb);
	strbuf_append_str(&sb, "+OK ");
	strbuf_appendf(&sb, "%s|%05u", expected, 42u);
	assert_int_equal(sb.len, 4 + 300 + 6);
	assert_memory_equal(sb.data, "+OK ", 4);
	assert_memory_equal(sb.data + 4, expected, 300);
	assert_string_equal(sb.data + 304, "|00042");
	strbuf_free(&sb);
}

/* A variadic caller of strbuf_vappendf, as the cores' reply helpers are. */
static void __attribute__((format(printf, 2, 3))) reply(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vappendf(sb, fmt, ap);
	va_end(ap);
	strbuf_append(sb, "\r\n", 2);
}

static void test_vappendf_takes_a_va_list(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	reply(&sb, "%s %lu octets", "+OK", 1234ul);
	reply(&sb, "-ERR %s", "no such message");
	assert_string_equal(sb.data, "+OK 1234 octets\r\n-ERR no such message\r\n");
	strbuf_free(&sb);
}

static void test_reset_empties_but_keeps_the_allocation(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_reset(&sb); /* before any allocation: nothing to do */
	assert_null(sb.data);
	assert_int_equal(sb.len, 0);
	strbuf_append_str(&sb, "some reply text");
	char *data = sb.data;
	size_t cap = sb.cap;
	strbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.data, "");
	assert_ptr_equal(sb.data, data);
	assert_int_equal(sb.cap, cap);
	strbuf_append_str(&sb, "next");
	assert_string_equal(sb.data, "next");
	assert_int_equal(sb.len, 4);
	strbuf_free(&sb);
}

static void test_free_leaves_a_usable_empty_buffer(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append_str(&sb, "x");
	strbuf_free(&sb);
	assert_null(sb.data);
	assert_int_equal(sb.len, 0);
	assert_int_equal(sb.cap, 0);
	strbuf_append_str(&sb, "again");
	assert_string_equal(sb.data, "again");
	strbuf_free(&sb);
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_new_buffer_is_empty_and_owns_nothing),
		cmocka_unit_test(test_append_counts_every_byte_and_terminates),
		cmocka_unit_test(test_appending_nothing_still_gives_a_string),
		cmocka_unit_test(test_growth_keeps_the_content),
		cmocka_unit_test(test_one_append_larger_than_twice_the_capacity),
		cmocka_unit_test(test_appendf_formats_and_appends),
		cmocka_unit_test(test_appendf_longer_than_the_first_allocation),
		cmocka_unit_test(test_vappendf_takes_a_va_list),
		cmocka_unit_test(test_reset_empties_but_keeps_the_allocation),
		cmocka_unit_test(test_free_leaves_a_usable_empty_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
