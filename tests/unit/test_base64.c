/* test_base64.c: base64 encoding and strict and lenient decoding (src/mail/base64.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/base64.h"
#include "strbuf.h"

static long decode(const char *in, unsigned char *out, size_t outsz)
{
	return base64_decode(in, strlen(in), out, outsz);
}

/* The lenient decoding of in as a string, or "(refused)". */
static char *decode_unpadded(const char *in)
{
	struct strbuf sb;

	strbuf_init(&sb);
	if (!base64_decode_unpadded(in, strlen(in), &sb)) {
		strbuf_free(&sb);
		return strdup("(refused)");
	}
	strbuf_append(&sb, "", 0);
	return sb.data;
}

/* RFC 4648 10: the test vectors. */
static void test_encode_gives_the_rfc_4648_vectors(void **state)
{
	static const char *const vectors[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="},
		{"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"}};

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct strbuf sb;

		strbuf_init(&sb);
		strbuf_append(&sb, "x", 1);
		base64_encode(&sb, vectors[i][0], strlen(vectors[i][0]));
		assert_int_equal(sb.len, 1 + base64_encoded_length(strlen(vectors[i][0])));
		assert_memory_equal(sb.data + 1, vectors[i][1], strlen(vectors[i][1]));
		strbuf_free(&sb);
	}
}

static void test_encode_and_decode_round_trip_every_octet_and_length(void **state)
{
	unsigned char in[10000], out[10000];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + i / 256);
	/* Lengths across the coder's internal chunk of 3072 octets. */
	for (size_t len = 0; len < sizeof(in); len += len < 64 ? 1 : 997) {
		struct strbuf sb;

		strbuf_init(&sb);
		base64_encode(&sb, in, len);
		assert_int_equal(sb.len, base64_encoded_length(len));
		assert_int_equal(base64_decode(sb.data ? sb.data : "", sb.len, out, len), (long)len);
		assert_memory_equal(out, in, len);
		strbuf_free(&sb);
	}
}

static void test_decode_takes_every_padding_length(void **state)
{
	unsigned char out[32];

	(void)state;
	assert_int_equal(decode("", out, sizeof(out)), 0);
	assert_int_equal(decode("Zm9v", out, sizeof(out)), 3);
	assert_memory_equal(out, "foo", 3);
	assert_int_equal(decode("Zm8=", out, sizeof(out)), 2);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(decode("Zg==", out, sizeof(out)), 1);
	assert_memory_equal(out, "f", 1);
	assert_int_equal(decode("AG1haWxib3hAZXhhbXBsZS5vcmcAc2VjcmV0", out, sizeof(out)), 27);
	assert_memory_equal(out, "\0mailbox@example.org\0secret", 27);
	assert_int_equal(decode("+/+/", out, sizeof(out)), 3);
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
}

static void test_decode_refuses_what_is_not_strict_base64(void **state)
{
	unsigned char out[32];

	(void)state;
	assert_int_equal(decode("Zm9", out, sizeof(out)), -1);      /* not a multiple of 4 */
	assert_int_equal(decode("Zm9vY", out, sizeof(out)), -1);
	assert_int_equal(decode("==", out, sizeof(out)), -1);
	assert_int_equal(decode("Zm9!", out, sizeof(out)), -1);     /* outside the alphabet */
	assert_int_equal(decode("Zm 9", out, sizeof(out)), -1);
	assert_int_equal(decode(" Zm9v", out, sizeof(out)), -1);    /* EVP would skip it */
	assert_int_equal(decode("Zm9v\n", out, sizeof(out)), -1);
	assert_int_equal(decode("Zm9-", out, sizeof(out)), -1);     /* base64url */
	assert_int_equal(decode("Zg==Zm9v", out, sizeof(out)), -1); /* data after padding */
	assert_int_equal(decode("Zm=v", out, sizeof(out)), -1);     /* EVP reads "=" as "A" */
	assert_int_equal(decode("Z===", out, sizeof(out)), -1);     /* too much padding */
	assert_int_equal(decode("====", out, sizeof(out)), -1);
	assert_int_equal(decode("=", out, sizeof(out)), -1);
}

static void test_decode_refuses_too_small_an_output(void **state)
{
	unsigned char out[8];

	(void)state;
	assert_int_equal(decode("Zm9vYg==", out, 3), -1);
	assert_int_equal(decode("Zm9vYg==", out, 4), 4);
	assert_int_equal(decode("Zm9v", out, 2), -1);
	assert_int_equal(decode("Zm9v", out, 3), 3);
}

/* RFC 2047 B words in the wild lack their padding now and then. */
static void test_unpadded_decode_forgives_missing_or_extra_padding(void **state)
{
	static const char *const cases[][2] = {{"Zm9vYg==", "foob"}, {"Zm9vYg", "foob"},
		{"Zm9vYmE", "fooba"}, {"Zm9vYg===", "foob"}, {"", ""}, {"Zm9v", "foo"},
		{"Zm9vY", "(refused)"}, {"Zm9v!", "(refused)"}, {"Zg=Zg", "(refused)"}};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = decode_unpadded(cases[i][0]);

		assert_string_equal(got, cases[i][1]);
		free(got);
	}
}

static void test_unpadded_decode_appends_and_leaves_a_refused_buffer_alone(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append_str(&sb, "Re: ");
	assert_true(base64_decode_unpadded("Zm9v", 4, &sb));
	assert_false(base64_decode_unpadded("Zm9v?", 5, &sb));
	assert_string_equal(sb.data, "Re: foo");
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_gives_the_rfc_4648_vectors),
		cmocka_unit_test(test_encode_and_decode_round_trip_every_octet_and_length),
		cmocka_unit_test(test_decode_takes_every_padding_length),
		cmocka_unit_test(test_decode_refuses_what_is_not_strict_base64),
		cmocka_unit_test(test_decode_refuses_too_small_an_output),
		cmocka_unit_test(test_unpadded_decode_forgives_missing_or_extra_padding),
		cmocka_unit_test(test_unpadded_decode_appends_and_leaves_a_refused_buffer_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
