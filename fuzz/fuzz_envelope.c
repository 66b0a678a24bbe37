/* fuzz_envelope.c: libFuzzer target for the spool's envelope codec (queue/envelope.c). Whatever
 * the bytes of an env/ file: parsing never crashes; what parses formats to text that parses
 * to an entry formatting to the very same text (a load and save changes nothing). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

#define FUZZ_ID "0123456789abcde"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_entry e, again;
	char err[512];
	char *text, *text_again;

	if (spool_envelope_parse((const char *)data, size, FUZZ_ID, "env/" FUZZ_ID, &e, err,
		sizeof(err)) != 0)
		return 0;
	text = spool_envelope_format(&e);
	/* Parsed strings may hold what the format refuses (invalid UTF-8 in an address). */
	if (text) {
		check(spool_envelope_parse(text, strlen(text), FUZZ_ID, "again", &again, err,
			sizeof(err)) == 0);
		text_again = spool_envelope_format(&again);
		check(text_again && strcmp(text, text_again) == 0);
		free(text_again);
		spool_entry_free(&again);
		free(text);
	}
	spool_entry_free(&e);
	return 0;
}
