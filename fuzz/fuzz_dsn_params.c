/* fuzz_dsn_params.c: libFuzzer target for the RFC 3461 parameter values (mail/dsn_params.c).
 * Whatever the bytes: decoding never overruns; a decoded xtext encodes back to valid xtext
 * that decodes to the same value; a parsed NOTIFY formats to a value that parses to the same
 * bits; a decoded ORCPT encodes to a wire ORCPT the client may send when it fits. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "mail/dsn_params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void check_xtext(const char *in, size_t size)
{
	char out[SMTP_ORCPT_MAX + 1], again[SMTP_ORCPT_MAX + 1];
	char *encoded;

	if (!dsn_xtext_decode(in, size, out, sizeof(out)))
		return;
	check(strlen(out) <= size);
	encoded = dsn_xtext_encode(out);
	check(dsn_xtext_valid(encoded, strlen(encoded)));
	check(dsn_xtext_decode(encoded, strlen(encoded), again, sizeof(again)));
	check(strcmp(out, again) == 0);
	free(encoded);
}

static void check_notify(const char *in, size_t size)
{
	unsigned notify = 0, again = 0;
	char *formatted;

	if (!dsn_notify_parse(in, size, &notify))
		return;
	check(notify != 0 && (notify & ~(unsigned)DSN_NOTIFY_ALL) == 0);
	formatted = dsn_notify_format(notify);
	check(dsn_notify_parse(formatted, strlen(formatted), &again) && again == notify);
	free(formatted);
}

static void check_orcpt(const char *in, size_t size)
{
	char out[SMTP_ORCPT_MAX + 1], again[SMTP_ORCPT_MAX + 1];
	char *wire;

	if (!dsn_orcpt_decode(in, size, out, sizeof(out)))
		return;
	wire = dsn_orcpt_encode(out);
	if (strlen(wire) <= SMTP_ORCPT_MAX && out[0] != ';' && strchr(out, ';')[1] != '\0') {
		check(dsn_orcpt_valid(wire));
		check(dsn_orcpt_decode(wire, strlen(wire), again, sizeof(again)));
		check(strcmp(out, again) == 0);
	}
	free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	enum dsn_ret ret;

	check_xtext(in, size);
	check_notify(in, size);
	check_orcpt(in, size);
	if (dsn_ret_parse(in, size, &ret))
		check(dsn_ret_name(ret) != NULL);
	return 0;
}
