/* test_smtp_data.c: the DATA framing reader (smtp/data.c): exact dot-unstuffing, the end of
 * data at <CRLF>.<CRLF> only, the SMTP smuggling sequences, and identical results however the
 * input is cut into chunks (byte at a time, every two-way split, every chunk size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "smtp/data.h"

#define NO_LIMIT UINT64_MAX

/* Everything one run of the reader produced. */
struct run {
	char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	bool bare_newline;
	bool oversize;
	uint64_t size;
};

static void run_free(struct run *r)
{
	free(r->out);
	memset(r, 0, sizeof(*r));
}

/* Feeds in[0..len) as the glue does: the chunks given by cuts (ascending offsets), each into
 * an output buffer of exactly chunk + 1 octets so ASan sees any overrun, stopping at the end
 * of data. */
static void feed_cut(const char *in, size_t len, const size_t *cuts, size_t ncuts,
	uint64_t max_size, struct run *r)
{
	struct smtp_data_reader reader;
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(len + 2);
	assert_non_null(r->out);
	smtp_data_reader_init(&reader, max_size);
	for (size_t k = 0; k <= ncuts && !smtp_data_reader_done(&reader); k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t n = end - start;
		char *chunk_out = malloc(n + 1);
		size_t out_len = 12345;

		assert_non_null(chunk_out);
		size_t used = smtp_data_reader_feed(&reader, in + start, n, chunk_out, &out_len);
		assert_true(used <= n);
		assert_true(out_len <= n + 1);
		/* It stops early only at the end of data. */
		if (used < n)
			assert_true(smtp_data_reader_done(&reader));
		memcpy(r->out + r->out_len, chunk_out, out_len);
		r->out_len += out_len;
		r->consumed += used;
		free(chunk_out);
		start = end;
	}
	r->done = smtp_data_reader_done(&reader);
	r->bare_newline = reader.bare_newline;
	r->oversize = reader.oversize;
	r->size = reader.size;
}

static void feed_whole(const char *in, size_t len, uint64_t max_size, struct run *r)
{
	feed_cut(in, len, NULL, 0, max_size, r);
}

static void feed_in_chunks_of(const char *in, size_t len, size_t chunk, uint64_t max_size,
	struct run *r)
{
	size_t ncuts = len ? (len - 1) / chunk : 0;
	size_t *cuts = calloc(ncuts + 1, sizeof(*cuts));

	assert_non_null(cuts);
	for (size_t k = 0; k < ncuts; k++)
		cuts[k] = (k + 1) * chunk;
	feed_cut(in, len, cuts, ncuts, max_size, r);
	free(cuts);
}

static void assert_same_run(const struct run *a, const struct run *b)
{
	assert_int_equal(a->out_len, b->out_len);
	assert_memory_equal(a->out, b->out, a->out_len);
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->bare_newline, b->bare_newline);
	assert_int_equal(a->oversize, b->oversize);
	assert_true(a->size == b->size);
}

/* The run over all of in is the same one-shot, byte at a time, in every chunk size and in
 * every two-way split. */
static void assert_chunking_does_not_matter(const char *in, size_t len, uint64_t max_size)
{
	struct run whole, other;

	feed_whole(in, len, max_size, &whole);
	for (size_t chunk = 1; chunk <= len; chunk++) {
		feed_in_chunks_of(in, len, chunk, max_size, &other);
		assert_same_run(&whole, &other);
		run_free(&other);
	}
	for (size_t cut = 0; cut <= len; cut++) {
		feed_cut(in, len, &cut, 1, max_size, &other);
		assert_same_run(&whole, &other);
		run_free(&other);
	}
	run_free(&whole);
}

/* One-shot run of a C string, checked byte-at-a-time and split too; the caller frees r. */
static void read_str(const char *in, struct run *r)
{
	assert_chunking_does_not_matter(in, strlen(in), NO_LIMIT);
	feed_whole(in, strlen(in), NO_LIMIT, r);
}

static void assert_out(const struct run *r, const char *want)
{
	assert_int_equal(r->out_len, strlen(want));
	assert_memory_equal(r->out, want, r->out_len);
}

/* A complete message: all of it consumed, ends, no bare line end. */
static void assert_clean_message(const char *in, const char *want)
{
	struct run r;

	read_str(in, &r);
	assert_out(&r, want);
	assert_true(r.done);
	assert_int_equal(r.consumed, strlen(in));
	assert_false(r.bare_newline);
	assert_false(r.oversize);
	assert_true(r.size == strlen(want));
	run_free(&r);
}

/* ---- dot-unstuffing (RFC 5321 4.5.2) ---- */

static void test_plain_message_passes_through(void **state)
{
	(void)state;
	assert_clean_message("Subject: hi\r\n\r\nHello\r\nWorld\r\n.\r\n",
		"Subject: hi\r\n\r\nHello\r\nWorld\r\n");
}

static void test_leading_dot_is_removed(void **state)
{
	(void)state;
	assert_clean_message("..x\r\n.\r\n", ".x\r\n");
	assert_clean_message("...\r\n.\r\n", "..\r\n");
	/* Only the first dot of each line, and only at line start. */
	assert_clean_message("a\r\n..b..\r\n.c\r\n.\r\n", "a\r\n.b..\r\nc\r\n");
}

static void test_double_dot_alone_gives_single_dot(void **state)
{
	(void)state;
	assert_clean_message("..\r\n.\r\n", ".\r\n");
	assert_clean_message("a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n");
}

static void test_lone_dot_line_ends_data(void **state)
{
	struct run r;

	(void)state;
	read_str("line\r\n.\r\n", &r);
	assert_true(r.done);
	assert_out(&r, "line\r\n");
	run_free(&r);
}

static void test_dots_inside_lines_are_kept(void **state)
{
	(void)state;
	assert_clean_message("a.b\r\n a.\r\n x..\r\n.\r\n", "a.b\r\n a.\r\n x..\r\n");
}

static void test_dot_unstuffing_counts_unstuffed_size(void **state)
{
	struct run r;

	(void)state;
	read_str("..\r\n.\r\n", &r);
	assert_true(r.size == 3);
	run_free(&r);
}

static void test_empty_message(void **state)
{
	(void)state;
	assert_clean_message(".\r\n", "");
}

static void test_message_of_one_empty_line(void **state)
{
	(void)state;
	assert_clean_message("\r\n.\r\n", "\r\n");
}

static void test_incomplete_message_is_not_done(void **state)
{
	static const char *const partial[] = {
		"", "x", "x\r", "x\r\n", "x\r\n.", "x\r\n.\r", ".", ".\r", "..\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		struct run r;

		read_str(partial[i], &r);
		assert_false(r.done);
		assert_int_equal(r.consumed, strlen(partial[i]));
		run_free(&r);
	}
}

/* ---- end of data at every buffer boundary ---- */

static const char sample_stream[] =
	"From: a@example.com\r\n"
	"\r\n"
	"..stuffed\r\n"
	".\x00nul\r\n"
	"caf\xc3\xa9\r\n"
	"..\r\n"
	"x.\r\n"
	"\r\n"
	".\r\n"
	"MAIL FROM:<next@example.com>\r\n";

/* sample_stream unstuffed, up to its end of data. */
static const char sample_message[] =
	"From: a@example.com\r\n"
	"\r\n"
	".stuffed\r\n"
	"\x00nul\r\n"
	"caf\xc3\xa9\r\n"
	".\r\n"
	"x.\r\n"
	"\r\n";

static void test_byte_at_a_time_matches_one_shot(void **state)
{
	struct run whole, bytes;

	(void)state;
	feed_whole(sample_stream, sizeof(sample_stream) - 1, NO_LIMIT, &whole);
	feed_in_chunks_of(sample_stream, sizeof(sample_stream) - 1, 1, NO_LIMIT, &bytes);
	assert_same_run(&whole, &bytes);
	assert_true(whole.done);
	assert_int_equal(whole.out_len, sizeof(sample_message) - 1);
	assert_memory_equal(whole.out, sample_message, whole.out_len);
	run_free(&whole);
	run_free(&bytes);
}

static void test_every_split_of_sample_matches_one_shot(void **state)
{
	(void)state;
	assert_chunking_does_not_matter(sample_stream, sizeof(sample_stream) - 1, NO_LIMIT);
}

static void test_end_sequence_split_at_every_boundary(void **state)
{
	static const char in[] = "a\r\n.\r\nb";
	struct run r;

	(void)state;
	/* Cuts before and inside "\r\n.\r\n": the end is found, "b" is left. */
	for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
		feed_cut(in, sizeof(in) - 1, &cut, 1, NO_LIMIT, &r);
		assert_true(r.done);
		assert_int_equal(r.consumed, 6);
		assert_out(&r, "a\r\n");
		run_free(&r);
	}
}

/* ---- SMTP smuggling: CVE-2023-51764, -51765, -51766 ---- */

/* in has one false end-of-data sequence, then a second "transaction", then the real end.
 * The false one must not end the data and must mark the message. */
static void assert_smuggling_refused(const char *false_end)
{
	char in[256];
	size_t len;
	struct run r;

	len = (size_t)snprintf(in, sizeof(in),
		"Subject: one\r\n\r\nHi%sMAIL FROM:<a@example.com>\r\nDATA\r\nsmuggled\r\n.\r\n",
		false_end);
	assert_chunking_does_not_matter(in, len, NO_LIMIT);
	feed_whole(in, len, NO_LIMIT, &r);
	if (!r.done || r.consumed != len)
		fail_msg("ended at %zu of %zu: the false end \"%s\" ended the data", r.consumed, len,
			false_end);
	assert_true(r.bare_newline);
	run_free(&r);

	/* Without the real end, the data is still open after the false one. */
	len = (size_t)snprintf(in, sizeof(in), "Hi%sQUIT\r\n", false_end);
	feed_whole(in, len, NO_LIMIT, &r);
	assert_false(r.done);
	assert_int_equal(r.consumed, len);
	run_free(&r);
}

static void test_lf_dot_lf_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\n.\n");
}

static void test_lf_dot_crlf_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\n.\r\n");
}

static void test_cr_dot_cr_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\r.\r");
}

static void test_crlf_dot_lf_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\r\n.\n");
}

static void test_lf_dot_cr_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\n.\r");
}

static void test_cr_dot_crlf_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\r.\r\n");
}

static void test_crlf_dot_cr_does_not_end_data(void **state)
{
	(void)state;
	assert_smuggling_refused("\r\n.\r");
}

static void test_bare_lf_is_flagged_and_kept(void **state)
{
	struct run r;

	(void)state;
	read_str("a\nb\r\n.\r\n", &r);
	assert_true(r.done);
	assert_true(r.bare_newline);
	assert_out(&r, "a\nb\r\n");
	run_free(&r);
}

static void test_bare_cr_is_flagged_and_kept(void **state)
{
	struct run r;

	(void)state;
	read_str("a\rb\r\n.\r\n", &r);
	assert_true(r.done);
	assert_true(r.bare_newline);
	assert_out(&r, "a\rb\r\n");
	run_free(&r);
}

static void test_cr_cr_lf_has_one_bare_cr(void **state)
{
	struct run r;

	(void)state;
	read_str("a\r\r\n.\r\n", &r);
	assert_true(r.done);
	assert_true(r.bare_newline);
	assert_out(&r, "a\r\r\n");
	run_free(&r);
}

static void test_dot_cr_then_other_byte_is_a_bare_cr(void **state)
{
	struct run r;

	(void)state;
	/* ".<CR>x": the dot was stuffing, the CR is bare and kept, the line goes on. */
	read_str(".\rx\r\n.\r\n", &r);
	assert_true(r.done);
	assert_true(r.bare_newline);
	assert_out(&r, "\rx\r\n");
	assert_int_equal(r.consumed, 8);
	run_free(&r);
	/* ".<CR><CR><LF>" is not the end either. */
	read_str(".\r\r\n.\r\n", &r);
	assert_true(r.done);
	assert_true(r.bare_newline);
	assert_out(&r, "\r\r\n");
	run_free(&r);
}

static void test_dot_cr_split_gives_two_octets_for_one(void **state)
{
	struct smtp_data_reader reader;
	char out[2];
	size_t out_len;

	(void)state;
	/* The one case where a chunk yields len + 1 octets: the held-back CR, then x. */
	smtp_data_reader_init(&reader, NO_LIMIT);
	assert_int_equal(smtp_data_reader_feed(&reader, ".\r", 2, out, &out_len), 2);
	assert_int_equal(out_len, 0);
	assert_int_equal(smtp_data_reader_feed(&reader, "x", 1, out, &out_len), 1);
	assert_int_equal(out_len, 2);
	assert_memory_equal(out, "\rx", 2);
}

static void test_clean_message_has_no_bare_newline(void **state)
{
	(void)state;
	assert_clean_message("a\r\nb\r\n\r\nc\r\n.\r\n", "a\r\nb\r\n\r\nc\r\n");
}

/* ---- what is after the end, what is in the message ---- */

static void test_bytes_after_terminator_are_not_consumed(void **state)
{
	static const char in[] = "x\r\n.\r\nQUIT\r\n";
	struct run r;

	(void)state;
	read_str(in, &r);
	assert_true(r.done);
	assert_int_equal(r.consumed, 6);
	assert_out(&r, "x\r\n");
	run_free(&r);
}

static void test_feed_after_done_consumes_nothing(void **state)
{
	struct smtp_data_reader reader;
	char out[16];
	size_t out_len;

	(void)state;
	smtp_data_reader_init(&reader, NO_LIMIT);
	assert_int_equal(smtp_data_reader_feed(&reader, ".\r\n", 3, out, &out_len), 3);
	assert_true(smtp_data_reader_done(&reader));
	assert_int_equal(smtp_data_reader_feed(&reader, "more\r\n", 6, out, &out_len), 0);
	assert_int_equal(out_len, 0);
}

static void test_nul_and_8bit_bytes_pass_through(void **state)
{
	static const char in[] = "\x00\x01\x7f\x80\xfe\xff\r\n.\x00\r\n.\r\n";
	static const char want[] = "\x00\x01\x7f\x80\xfe\xff\r\n\x00\r\n";
	struct run r;

	(void)state;
	assert_chunking_does_not_matter(in, sizeof(in) - 1, NO_LIMIT);
	feed_whole(in, sizeof(in) - 1, NO_LIMIT, &r);
	assert_true(r.done);
	assert_false(r.bare_newline);
	assert_int_equal(r.out_len, sizeof(want) - 1);
	assert_memory_equal(r.out, want, r.out_len);
	run_free(&r);
}

/* ---- size limit ---- */

static void test_oversize_stops_output_but_finds_end(void **state)
{
	static const char in[] = "0123456789\r\n..x\r\n.\r\nQUIT\r\n";
	struct run r;

	(void)state;
	assert_chunking_does_not_matter(in, sizeof(in) - 1, 5);
	feed_whole(in, sizeof(in) - 1, 5, &r);
	assert_true(r.oversize);
	assert_true(r.done);
	assert_int_equal(r.consumed, sizeof(in) - 1 - 6);
	assert_out(&r, "01234");
	assert_true(r.size == 16); /* still counted, unstuffed */
	run_free(&r);
}

static void test_exactly_max_size_is_not_oversize(void **state)
{
	static const char in[] = "abc\r\n.\r\n";
	struct run r;

	(void)state;
	feed_whole(in, sizeof(in) - 1, 5, &r);
	assert_false(r.oversize);
	assert_out(&r, "abc\r\n");
	run_free(&r);
	feed_whole(in, sizeof(in) - 1, 4, &r);
	assert_true(r.oversize);
	assert_out(&r, "abc\r");
	run_free(&r);
}

static void test_zero_max_size_refuses_any_content(void **state)
{
	struct run r;

	(void)state;
	feed_whole(".\r\n", 3, 0, &r);
	assert_false(r.oversize);
	assert_true(r.done);
	run_free(&r);
	feed_whole("x\r\n.\r\n", 6, 0, &r);
	assert_true(r.oversize);
	assert_true(r.done);
	assert_int_equal(r.out_len, 0);
	run_free(&r);
}

/* ---- against a plain byte-by-byte reader ---- */

/* The RFC 5321 4.5.2 rules written the slow, obvious way (the reader copies the inside of a
 * line in bulk): the same output, size, flags and consumed count for any input. */
static void reference_read(const char *in, size_t len, uint64_t max_size, struct run *r)
{
	enum { START, DOT, DOT_CR, LINE, CR, DONE } st = START;
	size_t i = 0;

	memset(r, 0, sizeof(*r));
	r->out = malloc(len + 2);
	assert_non_null(r->out);
#define PUT(ch) do { if (++r->size > max_size) r->oversize = true; \
		if (!r->oversize) r->out[r->out_len++] = (ch); } while (0)
	while (i < len && st != DONE) {
		char c = in[i++];
		if (st == START && c == '.') { st = DOT; continue; }
		if (st == DOT && c == '\r') { st = DOT_CR; continue; }
		if (st == DOT_CR) {
			if (c == '\n') { st = DONE; continue; }
			PUT('\r');
			r->bare_newline = true;
		} else if (st == CR) {
			if (c == '\n') { PUT('\n'); st = START; continue; }
			r->bare_newline = true;
		}
		if (c == '\n')
			r->bare_newline = true;
		PUT(c);
		st = c == '\r' ? CR : LINE;
	}
#undef PUT
	r->done = st == DONE;
	r->consumed = i;
}

static void test_matches_byte_by_byte_reference_on_random_input(void **state)
{
	(void)state;
	static const char alphabet[] = "..\r\r\n\nab";
	unsigned seed = 12345;
	char in[600];

	for (int round = 0; round < 3000; round++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(in));
		for (size_t k = 0; k < len; k++)
			in[k] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		uint64_t max_size = (uint64_t)(rand_r(&seed) % (len + 8));
		struct run expected, got;
		reference_read(in, len, max_size, &expected);
		feed_whole(in, len, max_size, &got);
		assert_same_run(&expected, &got);
		free(got.out);
		size_t chunk = 1 + (size_t)(rand_r(&seed) % 64);
		feed_in_chunks_of(in, len, chunk, max_size, &got);
		assert_same_run(&expected, &got);
		free(got.out);
		free(expected.out);
	}
}

/* The whole-DATA deadline: the idle timeout plus the size limit at SMTP_DATA_MIN_RATE. */
static void test_data_deadline_is_idle_timeout_plus_size_at_minimum_rate(void **state)
{
	(void)state;
	/* The defaults: 600 s + 40960000 octets / 16384 octets per second = 3100 s. */
	assert_int_equal(smtp_data_deadline_seconds(40960000, 600), 600 + 2500);
	/* A partial second of transfer is rounded up, never down to nothing. */
	assert_int_equal(smtp_data_deadline_seconds(1, 2), 3);
	assert_int_equal(smtp_data_deadline_seconds(SMTP_DATA_MIN_RATE, 2), 3);
	assert_int_equal(smtp_data_deadline_seconds(SMTP_DATA_MIN_RATE + 1, 2), 4);
}

static void test_data_deadline_is_capped_for_huge_size_limits(void **state)
{
	(void)state;
	assert_int_equal(smtp_data_deadline_seconds(INT64_MAX, 600), SMTP_DATA_DEADLINE_MAX_SECONDS);
	assert_int_equal(smtp_data_deadline_seconds(0, INT32_MAX), SMTP_DATA_DEADLINE_MAX_SECONDS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_message_passes_through),
		cmocka_unit_test(test_matches_byte_by_byte_reference_on_random_input),
		cmocka_unit_test(test_leading_dot_is_removed),
		cmocka_unit_test(test_double_dot_alone_gives_single_dot),
		cmocka_unit_test(test_lone_dot_line_ends_data),
		cmocka_unit_test(test_dots_inside_lines_are_kept),
		cmocka_unit_test(test_dot_unstuffing_counts_unstuffed_size),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_message_of_one_empty_line),
		cmocka_unit_test(test_incomplete_message_is_not_done),
		cmocka_unit_test(test_byte_at_a_time_matches_one_shot),
		cmocka_unit_test(test_every_split_of_sample_matches_one_shot),
		cmocka_unit_test(test_end_sequence_split_at_every_boundary),
		cmocka_unit_test(test_lf_dot_lf_does_not_end_data),
		cmocka_unit_test(test_lf_dot_crlf_does_not_end_data),
		cmocka_unit_test(test_cr_dot_cr_does_not_end_data),
		cmocka_unit_test(test_crlf_dot_lf_does_not_end_data),
		cmocka_unit_test(test_lf_dot_cr_does_not_end_data),
		cmocka_unit_test(test_cr_dot_crlf_does_not_end_data),
		cmocka_unit_test(test_crlf_dot_cr_does_not_end_data),
		cmocka_unit_test(test_bare_lf_is_flagged_and_kept),
		cmocka_unit_test(test_bare_cr_is_flagged_and_kept),
		cmocka_unit_test(test_cr_cr_lf_has_one_bare_cr),
		cmocka_unit_test(test_dot_cr_then_other_byte_is_a_bare_cr),
		cmocka_unit_test(test_dot_cr_split_gives_two_octets_for_one),
		cmocka_unit_test(test_clean_message_has_no_bare_newline),
		cmocka_unit_test(test_bytes_after_terminator_are_not_consumed),
		cmocka_unit_test(test_feed_after_done_consumes_nothing),
		cmocka_unit_test(test_nul_and_8bit_bytes_pass_through),
		cmocka_unit_test(test_oversize_stops_output_but_finds_end),
		cmocka_unit_test(test_exactly_max_size_is_not_oversize),
		cmocka_unit_test(test_zero_max_size_refuses_any_content),
		cmocka_unit_test(test_data_deadline_is_idle_timeout_plus_size_at_minimum_rate),
		cmocka_unit_test(test_data_deadline_is_capped_for_huge_size_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
