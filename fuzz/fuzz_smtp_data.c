/* fuzz_smtp_data.c: libFuzzer target for the DATA framing reader (smtp/data.c): whatever the
 * bytes and however they are cut into chunks, the result (message octets, bytes consumed,
 * end found, bare line end, size) equals that of one call over all of them. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	char *out;
	size_t out_len;
	size_t consumed;
	struct smtp_data_reader reader;
};

/* xorshift32: chunk sizes derived from the input, reproducible from it. */
static uint32_t next_random(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Feeds in[0..len) in chunks (all of it at once when seed is 0), each chunk's output into a
 * buffer of exactly chunk + 1 octets so ASan sees any overrun. */
static void run_reader(const char *in, size_t len, uint64_t max_size, uint32_t seed,
	struct run *r)
{
	size_t pos = 0;

	r->out = malloc(len + 1);
	r->out_len = 0;
	r->consumed = 0;
	if (!r->out)
		abort();
	smtp_data_reader_init(&r->reader, max_size);
	while (pos < len && !smtp_data_reader_done(&r->reader)) {
		size_t n = len - pos;
		if (seed) {
			uint32_t pick = next_random(&seed);
			/* Mostly tiny chunks (where boundaries bite), sometimes large ones. */
			size_t want = (pick & 0x100) ? (pick >> 9) % 4096 + 1 : (pick & 7) + 1;
			if (want < n)
				n = want;
		}
		char *chunk_out = malloc(n + 1);
		size_t out_len = 0;
		if (!chunk_out)
			abort();
		size_t used = smtp_data_reader_feed(&r->reader, in + pos, n, chunk_out, &out_len);
		if (used > n || out_len > n + 1 || (used < n && !smtp_data_reader_done(&r->reader)))
			abort();
		if (r->out_len + out_len > len + 1)
			abort();
		memcpy(r->out + r->out_len, chunk_out, out_len);
		r->out_len += out_len;
		pos += used;
		free(chunk_out);
	}
	r->consumed = pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, chunked;
	uint32_t seed;
	uint64_t max_size;

	/* Header: 4 bytes of chunking seed, 2 of size limit; the rest is the DATA stream. */
	if (size < 6)
		return 0;
	memcpy(&seed, data, 4);
	seed |= 1; /* xorshift needs a non-zero state */
	max_size = (uint64_t)data[4] << 8 | data[5];
	if (max_size == 0xffff)
		max_size = UINT64_MAX;
	data += 6;
	size -= 6;

	run_reader((const char *)data, size, max_size, 0, &whole);
	run_reader((const char *)data, size, max_size, seed, &chunked);
	if (whole.out_len != chunked.out_len || memcmp(whole.out, chunked.out, whole.out_len) ||
	    whole.consumed != chunked.consumed ||
	    whole.reader.state != chunked.reader.state ||
	    whole.reader.bare_newline != chunked.reader.bare_newline ||
	    whole.reader.oversize != chunked.reader.oversize ||
	    whole.reader.size != chunked.reader.size)
		abort();
	/* Output never exceeds the limit, and size counts every message octet. */
	if (whole.out_len > max_size || (!whole.reader.oversize && whole.out_len != whole.reader.size))
		abort();
	/* Only <CRLF>.<CRLF> ends the data (".<CRLF>" at the very start counts as preceded by
	 * CRLF), and it is the first one: bare CR and LF never start a line. */
	char *framed = malloc(size + 2);
	if (!framed)
		abort();
	memcpy(framed, "\r\n", 2);
	memcpy(framed + 2, data, size);
	const char *end = memmem(framed, size + 2, "\r\n.\r\n", 5);
	if (end) {
		if (!smtp_data_reader_done(&whole.reader) ||
		    whole.consumed != (size_t)(end - framed) + 5 - 2)
			abort();
	} else if (smtp_data_reader_done(&whole.reader) || whole.consumed != size) {
		abort();
	}
	free(framed);
	free(whole.out);
	free(chunked.out);
	return 0;
}
