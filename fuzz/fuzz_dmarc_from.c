/* fuzz_dmarc_from.c: the RFC5322.From domain for DMARC (src/verify/dmarc.c,
 * verify_dmarc_from_domain) on arbitrary header sections. When it answers true, the domain
 * is a non-empty lower-case domain name (letters, digits, '-', '_' and single dots) whose
 * every label appears, ignoring case, in the message (RFC 5322 4.4 allows comments around
 * the dots); when false, the domain is "". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/headers.h"
#include "verify/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool appears(const uint8_t *data, size_t size, const char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i + len <= size; i++)
		if (strncasecmp((const char *)data + i, s, len) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mail_headers h;
	size_t header_len;
	char domain[AUTHRES_VALUE_MAX];

	if (mail_headers_parse((const char *)data, size, &h, &header_len) != MAIL_HEADERS_OK)
		return 0;
	memset(domain, 'x', sizeof(domain));
	if (verify_dmarc_from_domain(&h, domain, sizeof(domain))) {
		size_t len = strnlen(domain, sizeof(domain));
		check(len > 0 && len < sizeof(domain));
		check(domain[0] != '.' && domain[len - 1] != '.');
		for (size_t i = 0; i < len; i++) {
			char c = domain[i];
			check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
				c == '_' || (c == '.' && domain[i + 1] != '.'));
		}
		for (char *label = strtok(domain, "."); label; label = strtok(NULL, "."))
			check(appears(data, size, label));
	} else {
		check(domain[0] == '\0');
	}
	mail_headers_free(&h);
	return 0;
}
