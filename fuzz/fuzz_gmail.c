/* fuzz_gmail.c: the Gmail API answers' parsers (src/push/gmail.c: gmail_verdict on import
 * answers and error documents, gmail_list_found on messages.list answers) on arbitrary bytes.
 * The first octet picks the HTTP status and whether a message id is wanted. The verdict is
 * always one of the four, follows the status as PUSH.md says (200 with an id is the only OK;
 * 401 is AUTH; 400 and 413 REFUSED), the id fits its buffer (ASan sees exact-size buffers)
 * and the detail text is terminated. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push/gmail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 400, 401, 403, 413, 429, 500, 503, 404, 0, 200, 200};

	if (size < 1)
		return 0;
	long status = statuses[(data[0] >> 2) % (sizeof(statuses) / sizeof(statuses[0]))];
	bool want_id = (data[0] & 1) != 0;
	size_t idsz = (data[0] & 2) != 0 ? 8 : PUSH_REMOTE_ID_MAX + 1;
	size_t detailsz = PUSH_DETAIL_MAX + 1;
	size_t len = size - 1;
	char *body = malloc(len ? len : 1);
	char *id = malloc(idsz);
	char *detail = malloc(detailsz);

	if (body == NULL || id == NULL || detail == NULL)
		abort();
	memcpy(body, data + 1, len);
	id[0] = '\0';
	enum push_status verdict = gmail_verdict(status, body, len, want_id ? id : NULL, idsz,
		detail, detailsz);
	check(strnlen(detail, detailsz) < detailsz);
	switch (verdict) {
	case PUSH_OK:
		check(status == 200);
		if (want_id)
			check(id[0] != '\0' && strnlen(id, idsz) < idsz);
		break;
	case PUSH_TEMPORARY:
		check(status != 401 && status != 400 && status != 413);
		check(status != 200 || want_id);
		break;
	case PUSH_AUTH:
		check(status == 401 || status == 403);
		break;
	case PUSH_REFUSED:
		check(status == 400 || status == 413);
		break;
	default:
		abort();
	}
	if (verdict != PUSH_OK)
		check(id[0] == '\0');

	int found = gmail_list_found(body, len);
	check(found == -1 || found == 0 || found == 1);
	free(body);
	free(id);
	free(detail);
	return 0;
}
