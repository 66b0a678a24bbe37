/* fuzz_imap_reply.c: the IMAP response parser (src/push/imap_reply.c) on arbitrary lines: it
 * reads only the octets given (ASan sees a copy with no slack after it), always leaves a
 * terminated, printable text and a known kind, and never reports more SEARCH results than
 * the line could hold. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push/imap_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	struct imap_reply r;
	uint64_t literal;

	if (!line)
		return 0;
	memcpy(line, data, size);
	if (imap_reply_parse(line, size, &r)) {
		if (r.kind != IMAP_REPLY_TAGGED && r.kind != IMAP_REPLY_UNTAGGED &&
		    r.kind != IMAP_REPLY_CONTINUATION)
			abort();
		size_t n = strnlen(r.text, sizeof(r.text));
		if (n >= sizeof(r.text) || n > size)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)r.text[i] < 0x20 || (unsigned char)r.text[i] >= 0x7f)
				abort();
		if (r.kind == IMAP_REPLY_TAGGED &&
		    (r.tag[0] == '\0' || strlen(r.tag) > PUSH_IMAP_TAG_MAX))
			abort();
		if (r.search_count > size / 2 + 1)
			abort();
		if (r.code == IMAP_CODE_APPENDUID && (r.uid == 0 || r.uidvalidity == 0))
			abort();
		uint32_t uid;
		if (r.code == IMAP_CODE_APPENDUID && r.uid_set[0] &&
		    (!imap_uid_set_nth(r.uid_set, 0, &uid) || uid == 0))
			abort();
		for (size_t nth = 0; nth < 4; nth++)
			if (imap_uid_set_nth(r.uid_set, nth * 1000, &uid) && uid == 0)
				abort();
	}
	(void)imap_reply_trailing_literal(line, size, &literal);
	struct imap_capabilities caps;
	imap_capabilities_parse(line, size, &caps);
	free(line);
	return 0;
}
