/* test_rfc2047.c: RFC 2047 encoded-words (src/mail/rfc2047.c): finding and decoding B and Q
 * words, joining runs of one charset, and writing text back folded to the RFC's lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/rfc2047.h"
#include "strbuf.h"

/* The decoded text of the first word (or run, when run is true) in s, or "(none)". */
static char *first_text(const char *s, bool run)
{
	struct rfc2047_word w;
	struct strbuf sb;

	strbuf_init(&sb);
	if (!rfc2047_word_next(s, strlen(s), 0, &w, &sb)) {
		strbuf_free(&sb);
		return strdup("(none)");
	}
	if (run)
		rfc2047_run_end(s, strlen(s), &w, &sb);
	strbuf_append(&sb, "", 0);
	return sb.data;
}

static void assert_first_text(const char *s, bool run, const char *want)
{
	char *got = first_text(s, run);

	assert_string_equal(got, want);
	free(got);
}

static void test_b_and_q_words_decode(void **state)
{
	(void)state;
	assert_first_text("=?utf-8?B?w6l0w6k=?=", false, "\xc3\xa9t\xc3\xa9");
	assert_first_text("=?ISO-8859-1?q?caf=E9_au_lait?=", false, "caf\xe9 au lait");
	/* Missing base64 padding is forgiven, as readers do. */
	assert_first_text("=?utf-8?b?Zm9vYg?=", false, "foob");
	/* Found without whitespace before it. */
	assert_first_text("Re:=?utf-8?Q?hi?=", false, "hi");
}

static void test_malformed_words_are_plain_text(void **state)
{
	(void)state;
	assert_first_text("=?utf-8?X?abc?=", false, "(none)");   /* no such encoding */
	assert_first_text("=??B?Zm9v?=", false, "(none)");       /* no charset */
	assert_first_text("=?utf-8?B?Zm9v!?=", false, "(none)"); /* not base64 */
	assert_first_text("=?utf-8?Q?a=4?=", false, "(none)");   /* cut hex */
	assert_first_text("=?utf-8?Q?a b?=", false, "(none)");   /* space inside */
	assert_first_text("=?utf-8?Q?abc", false, "(none)");     /* never ends */
}

/* RFC 2047 6.2: whitespace between adjacent words is not displayed. */
static void test_a_run_of_one_charset_joins_and_stops_at_another(void **state)
{
	(void)state;
	assert_first_text("=?utf-8?Q?a?= \r\n =?UTF-8?B?Yg==?= tail", true, "ab");
	assert_first_text("=?utf-8?Q?a?= =?iso-8859-1?Q?b?=", true, "a");
	assert_first_text("=?utf-8*en?Q?a?= =?utf-8?Q?b?=", true, "ab"); /* RFC 2231 language */
}

static void test_charset_kinds(void **state)
{
	static const struct {
		const char *word;
		enum rfc2047_charset kind;
	} cases[] = {
		{"=?UTF-8?Q?x?=", RFC2047_CHARSET_UTF8},
		{"=?iso-8859-15?Q?x?=", RFC2047_CHARSET_SINGLE_OCTET},
		{"=?windows-1252?Q?x?=", RFC2047_CHARSET_SINGLE_OCTET},
		{"=?EUC-JP?Q?x?=", RFC2047_CHARSET_EUC},
		{"=?iso-2022-jp?B?eA==?=", RFC2047_CHARSET_OPAQUE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rfc2047_word w;
		struct strbuf sb;

		strbuf_init(&sb);
		assert_true(rfc2047_word_next(cases[i].word, strlen(cases[i].word), 0, &w, &sb));
		assert_int_equal(rfc2047_charset_of(&w), cases[i].kind);
		strbuf_free(&sb);
	}
}

/* Writes text as words like the first word of like_word, after prefix. */
static char *write_like(const char *like_word, const char *prefix, const char *text)
{
	struct rfc2047_word w;
	struct strbuf decoded, out;

	strbuf_init(&decoded);
	strbuf_init(&out);
	assert_true(rfc2047_word_next(like_word, strlen(like_word), 0, &w, &decoded));
	strbuf_append_str(&out, prefix);
	rfc2047_text_write(&out, &w, rfc2047_charset_of(&w), text, strlen(text), "\r\n");
	strbuf_free(&decoded);
	return out.data;
}

static void test_plain_ascii_is_written_as_itself(void **state)
{
	char *s = write_like("=?utf-8?B?eA==?=", "Subject: ", "hello world");

	(void)state;
	assert_string_equal(s, "Subject: hello world");
	free(s);
	/* Text that could be read as a word is encoded. */
	s = write_like("=?utf-8?Q?x?=", "", "a=?b");
	assert_string_equal(s, "=?utf-8?Q?a=3D=3Fb?=");
	free(s);
}

static void test_long_text_folds_into_words_of_whole_characters(void **state)
{
	char text[301];
	char *s;

	(void)state;
	/* 100 two-octet characters: no word may split one. */
	for (size_t i = 0; i < 100; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[200] = '\0';
	s = write_like("=?utf-8?B?eA==?=", "Subject: ", text);
	for (char *line = s, *end; line; line = end ? end + 2 : NULL) {
		end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);

		assert_true(len <= 76);
	}
	/* Decoding the words again gives the text back. */
	{
		struct rfc2047_word w;
		struct strbuf back;

		strbuf_init(&back);
		assert_true(rfc2047_word_next(s, strlen(s), 0, &w, &back));
		rfc2047_run_end(s, strlen(s), &w, &back);
		assert_int_equal(back.len, 200);
		assert_memory_equal(back.data, text, 200);
		strbuf_free(&back);
	}
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b_and_q_words_decode),
		cmocka_unit_test(test_malformed_words_are_plain_text),
		cmocka_unit_test(test_a_run_of_one_charset_joins_and_stops_at_another),
		cmocka_unit_test(test_charset_kinds),
		cmocka_unit_test(test_plain_ascii_is_written_as_itself),
		cmocka_unit_test(test_long_text_folds_into_words_of_whole_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
