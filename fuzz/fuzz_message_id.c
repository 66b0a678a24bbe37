/* fuzz_message_id.c: the Message-ID-at-receipt header scan (src/mail/headers.c,
 * mail_message_id_scan_*) driven octet by octet as smtp/inbound.c drives it, on arbitrary
 * messages. The output must be the input with "Message-ID: <...>" CRLF added exactly where a
 * plain line-by-line reading says: before the blank line (or at the end, after a CRLF when the
 * message ends inside a line) when no line of the header section starts a Message-ID field,
 * nowhere otherwise. Inputs past MAIL_HEADER_SECTION_MAX only check that the input survives. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "mail/headers.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELD "Message-ID: <fuzz.1@example.org>\r\n"

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* What smtp/inbound.c writes for in[0..len). */
static void scan(const char *in, size_t len, struct strbuf *out)
{
	struct mail_message_id_scan s;
	bool held = false;
	size_t i;

	mail_message_id_scan_init(&s);
	for (i = 0; i < len && mail_message_id_scan_active(&s); i++) {
		switch (mail_message_id_scan_feed(&s, in[i])) {
		case MAIL_MESSAGE_ID_WRITE:
			strbuf_append(out, &in[i], 1);
			break;
		case MAIL_MESSAGE_ID_HOLD:
			check(!held);
			held = true;
			break;
		case MAIL_MESSAGE_ID_RELEASE:
			check(held);
			held = false;
			strbuf_append(out, "\r", 1);
			strbuf_append(out, &in[i], 1);
			break;
		case MAIL_MESSAGE_ID_INSERT:
			check(!mail_message_id_scan_active(&s));
			mail_message_id_field(out, "fuzz.1", "example.org");
			/* fall through */
		case MAIL_MESSAGE_ID_OVER:
			check(!mail_message_id_scan_active(&s));
			if (held)
				strbuf_append(out, "\r", 1);
			held = false;
			strbuf_append(out, &in[i], 1);
			break;
		}
	}
	if (mail_message_id_scan_active(&s)) {
		bool line_end_first;
		if (mail_message_id_scan_missing_at_end(&s, &line_end_first)) {
			if (line_end_first)
				strbuf_append(out, "\r\n", 2);
			mail_message_id_field(out, "fuzz.1", "example.org");
		}
		if (held)
			strbuf_append(out, "\r", 1);
	} else {
		check(!held);
	}
	strbuf_append(out, in + i, len - i);
}

static bool starts_message_id(const char *line, size_t len)
{
	static const char name[] = "message-id";
	size_t n = sizeof(name) - 1, i;

	if (len < n)
		return false;
	for (i = 0; i < n; i++) {
		char c = line[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != name[i])
			return false;
	}
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':';
}

/* The reference, line by line. */
static void expect(const char *in, size_t len, struct strbuf *out)
{
	size_t start = 0;

	while (start < len) {
		const char *nl = memchr(in + start, '\n', len - start);
		size_t end = nl != NULL ? (size_t)(nl - in) : len; /* the line is [start, end) */
		size_t n = end - start;
		const char *line = in + start;
		if (n == 0 || (n == 1 && line[0] == '\r')) {
			/* The blank line (or a lone CR at the very end): the section ends here. */
			strbuf_append(out, in, start);
			strbuf_append(out, FIELD, strlen(FIELD));
			strbuf_append(out, line, len - start);
			return;
		}
		if (line[0] != ' ' && line[0] != '\t' && line[0] != '\r' &&
		    starts_message_id(line, n)) {
			strbuf_append(out, in, len);
			return;
		}
		if (nl == NULL) { /* the message ends inside this line */
			strbuf_append(out, in, len);
			strbuf_append(out, "\r\n" FIELD, 2 + strlen(FIELD));
			return;
		}
		start = end + 1;
	}
	strbuf_append(out, in, len);
	strbuf_append(out, FIELD, strlen(FIELD));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	struct strbuf got, want;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	strbuf_init(&got);
	strbuf_init(&want);
	scan(in, size, &got);
	if (size < MAIL_HEADER_SECTION_MAX) {
		expect(in, size, &want);
		check(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
	} else {
		check(got.len >= size);
	}
	strbuf_free(&got);
	strbuf_free(&want);
	free(in);
	return 0;
}
