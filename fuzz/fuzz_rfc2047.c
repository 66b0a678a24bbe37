/* fuzz_rfc2047.c: libFuzzer target for RFC 2047 encoded-words (mail/rfc2047.c). Whatever the
 * bytes: every word found lies inside the input; when the text of a run is written back as
 * words like its first one, those words decode to the same text again, and no line of them
 * is longer than RFC 2047 allows (unless one character alone is longer). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/rfc2047.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* The written words decode, as one run, to text. */
static void check_round_trip(const struct rfc2047_word *like, enum rfc2047_charset kind,
	const struct strbuf *text)
{
	struct rfc2047_word w;
	struct strbuf out, back;

	strbuf_init(&out);
	strbuf_init(&back);
	rfc2047_text_write(&out, like, kind, text->data ? text->data : "", text->len, "\r\n");
	if (out.len > 0 && rfc2047_word_next(out.data, out.len, 0, &w, &back) && w.start == 0) {
		size_t end = rfc2047_run_end(out.data, out.len, &w, &back);

		check(end == out.len);
		check(back.len == text->len && memcmp(back.data ? back.data : "",
			text->data ? text->data : "", text->len) == 0);
	}
	strbuf_free(&out);
	strbuf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct strbuf decoded;
	size_t pos = 0;

	strbuf_init(&decoded);
	/* Bounded: each word found moves pos forward. */
	while (pos < size) {
		struct rfc2047_word w;

		strbuf_reset(&decoded);
		if (!rfc2047_word_next(s, size, pos, &w, &decoded))
			break;
		check(w.start >= pos && w.start < w.end && w.end <= size);
		size_t end = rfc2047_run_end(s, size, &w, &decoded);
		check(end >= w.end && end <= size);
		check_round_trip(&w, rfc2047_charset_of(&w), &decoded);
		pos = end;
	}
	strbuf_free(&decoded);
	return 0;
}
