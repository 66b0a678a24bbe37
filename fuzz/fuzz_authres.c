/* fuzz_authres.c: the Authentication-Results code (src/verify/authres.c) on arbitrary bytes.
 * authres_claims() on any field value: never reads past len, is true for any value that
 * starts with our authserv-id and ';', and false when the id is nowhere in the value (line
 * ends and quoted-pair backslashes aside). And
 * authres_write() with every string taken from the input: the output is exactly one header
 * field (each line end followed by a TAB but the last, no lone CR or LF, no NUL), whose value
 * authres_claims() recognises as ours. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"
#include "verify/authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID "mx.example.org"
#define FIELD_NAME "Authentication-Results:"

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Whether the id is in data once line ends and backslashes (quoted-pair) are taken out: the
 * forms a quoted authserv-id may take. */
static bool contains_id(const uint8_t *data, size_t size)
{
	size_t id_len = strlen(ID), n = 0;
	char *squeezed = malloc(size + 1);
	bool found = false;

	check(squeezed != NULL);
	for (size_t i = 0; i < size; i++)
		if (data[i] != '\r' && data[i] != '\n' && data[i] != '\\')
			squeezed[n++] = (char)data[i];
	for (size_t i = 0; i + id_len <= n && !found; i++)
		found = strncasecmp(squeezed + i, ID, id_len) == 0;
	free(squeezed);
	return found;
}

/* The next NUL-separated piece of the input, cut to fit dst (a NUL-terminated string). */
static void take(char *dst, size_t dst_size, const uint8_t **data, size_t *size)
{
	size_t n = 0;

	while (*size > 0 && **data != 0) {
		if (n + 1 < dst_size)
			dst[n++] = (char)**data;
		(*data)++;
		(*size)--;
	}
	if (*size > 0) {
		(*data)++;
		(*size)--;
	}
	dst[n] = '\0';
}

static void check_claims(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so a read past len is caught by the sanitizer. */
	char *copy = malloc(size ? size : 1);
	char *prefixed = malloc(size + sizeof(ID ";"));

	check(copy && prefixed);
	memcpy(copy, data, size);
	bool claimed = authres_claims(copy, size, ID);
	if (claimed)
		check(contains_id(data, size));
	memcpy(prefixed, ID ";", strlen(ID ";"));
	memcpy(prefixed + strlen(ID ";"), data, size);
	check(authres_claims(prefixed, size + strlen(ID ";"), ID));
	free(copy);
	free(prefixed);
}

static void check_write(const uint8_t *data, size_t size)
{
	struct authres ar;
	struct strbuf out;
	const char *value;
	size_t value_len;

	memset(&ar, 0, sizeof(ar));
	if (size < 3)
		return;
	ar.spf_mailfrom.result = (enum auth_result)(data[0] % 8);
	ar.spf_helo.result = (enum auth_result)((data[0] >> 3) % 8);
	ar.dmarc.result = (enum auth_result)(data[1] % 8);
	ar.dmarc.policy = (enum dmarc_policy)((data[1] >> 3) % 4);
	ar.dmarc.disposition = (enum dmarc_policy)((data[1] >> 5) % 4);
	ar.dkim_count = data[2] % (DKIM_SIGNATURES_MAX + 2);
	data += 3;
	size -= 3;
	take(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity), &data, &size);
	take(ar.spf_helo.identity, sizeof(ar.spf_helo.identity), &data, &size);
	take(ar.dmarc.from_domain, sizeof(ar.dmarc.from_domain), &data, &size);
	for (size_t i = 0; i < DKIM_SIGNATURES_MAX && i < ar.dkim_count; i++) {
		struct authres_dkim *d = &ar.dkim[i];
		d->result = (enum auth_result)(i % 8);
		take(d->comment, sizeof(d->comment), &data, &size);
		take(d->domain, sizeof(d->domain), &data, &size);
		take(d->selector, sizeof(d->selector), &data, &size);
		take(d->b, sizeof(d->b), &data, &size);
	}

	strbuf_init(&out);
	authres_write(&ar, ID, "\r\n", &out);
	check(out.len > strlen(FIELD_NAME) + 2);
	check(memcmp(out.data, FIELD_NAME " ", strlen(FIELD_NAME) + 1) == 0);
	check(memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
	for (size_t i = 0; i < out.len; i++) {
		check(out.data[i] != '\0');
		if (out.data[i] == '\r') {
			check(i + 1 < out.len && out.data[i + 1] == '\n');
			check(i + 2 == out.len || out.data[i + 2] == '\t');
		} else if (out.data[i] == '\n') {
			check(i > 0 && out.data[i - 1] == '\r');
		}
	}
	value = out.data + strlen(FIELD_NAME);
	value_len = out.len - strlen(FIELD_NAME);
	check(authres_claims(value, value_len, ID));
	strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_claims(data, size);
	check_write(data, size);
	return 0;
}
