/* fuzz_base64.c: libFuzzer target for base64 decoding (mail/base64.c). Whatever the bytes:
 * strict decoding never writes past its buffer, and what it accepts encodes back to exactly
 * the input; lenient decoding accepts everything strict decoding does, with the same octets. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/base64.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	unsigned char *out = malloc(size / 4 * 3 + 1);
	struct strbuf again, lenient;
	long n = base64_decode(in, size, out, size / 4 * 3);

	strbuf_init(&again);
	strbuf_init(&lenient);
	if (n >= 0) {
		base64_encode(&again, out, (size_t)n);
		/* Bits after the last octet may be set in the input and are dropped: compare all but
		 * the final group's last significant character, which may differ only then. */
		check(again.len == size);
		check(size == 0 || memcmp(again.data, in, size - 3) == 0);
		check(base64_decode_unpadded(in, size, &lenient));
		check(lenient.len == (size_t)n && memcmp(lenient.data ? lenient.data : "", out,
			(size_t)n) == 0);
	} else {
		base64_decode_unpadded(in, size, &lenient);
	}
	strbuf_free(&again);
	strbuf_free(&lenient);
	free(out);
	return 0;
}
