/* fuzz_sendas.c: libFuzzer target for the header parser (mail/headers.c) and send-as
 * (mail/sendas.c). Whatever the bytes: the header section is written back byte-exact when
 * nothing changed; after send-as and Date/Message-ID, the output parses again into exactly
 * the fields we hold (no edit ever splits, merges or ends the header section), every From
 * carries the new sender, and a message send-as did not apply to is unchanged. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/headers.h"
#include "mail/sendas.h"
#include "strbuf.h"

#define FUZZ_DOMAIN "example.org"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool same_fields(const struct mail_headers *a, const struct mail_headers *b)
{
	if (a->count != b->count || strcmp(a->separator, b->separator) != 0)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		const struct mail_field *x = &a->fields[i], *y = &b->fields[i];
		if (x->raw_len != y->raw_len || memcmp(x->raw, y->raw, x->raw_len) != 0 ||
		    x->name_len != y->name_len || x->value_offset != y->value_offset)
			return false;
	}
	return true;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mail_headers h, again;
	size_t header_len, again_len;
	char sender[SMTP_PATH_MAX + 1] = "";
	struct strbuf out, value;

	if (mail_headers_parse(msg, size, &h, &header_len) != MAIL_HEADERS_OK)
		return 0;
	check(header_len <= size && header_len <= MAIL_HEADER_SECTION_MAX);
	check(h.count <= MAIL_HEADER_FIELDS_MAX);

	/* Untouched: byte-exact. */
	strbuf_init(&out);
	mail_headers_serialize(&h, &out);
	check(out.len == header_len && (header_len == 0 || memcmp(out.data, msg, header_len) == 0));

	/* Reading values never goes wrong. */
	strbuf_init(&value);
	for (size_t i = 0; i < h.count; i++)
		mail_field_unfold_value(&h.fields[i], &value);
	strbuf_free(&value);

	enum sendas_result result = sendas_apply(&h, FUZZ_DOMAIN, sender);
	strbuf_reset(&out);
	mail_headers_serialize(&h, &out);
	bool unchanged = out.len == header_len &&
		(header_len == 0 || memcmp(out.data, msg, header_len) == 0);
	if (result == SENDAS_APPLIED) {
		/* NAME@DOMAIN with a valid NAME. */
		char *at = strchr(sender, '@');
		check(at && at > sender && strcmp(at, "@" FUZZ_DOMAIN) == 0);
		for (char *p = sender; p < at; p++)
			check(is_name_char(*p));
		for (size_t i = mail_headers_index(&h, "From", 0); i != MAIL_HEADERS_NOT_FOUND;
		     i = mail_headers_index(&h, "From", i + 1))
			check(memmem(h.fields[i].raw, h.fields[i].raw_len, sender, strlen(sender)));
	} else {
		check(sender[0] == '\0' && unchanged);
	}

	mail_headers_ensure_date_and_message_id(&h, 1770976800, "fuzz.token", FUZZ_DOMAIN);
	check(mail_headers_find(&h, "Date") && mail_headers_find(&h, "Message-ID"));
	strbuf_reset(&out);
	mail_headers_serialize(&h, &out);
	size_t section_len = out.len;
	strbuf_append(&out, msg + header_len, size - header_len);

	/* The output reads back as the very fields we hold, the body where it was. Only what our
	 * edits add can take it past the limits, and then it is refused, not misread. */
	if (mail_headers_parse(out.data ? out.data : "", out.len, &again, &again_len) ==
	    MAIL_HEADERS_OK) {
		check(again_len == section_len);
		check(same_fields(&h, &again));
		mail_headers_free(&again);
	} else {
		check(section_len > MAIL_HEADER_SECTION_MAX || h.count > MAIL_HEADER_FIELDS_MAX);
	}
	strbuf_free(&out);
	mail_headers_free(&h);
	return 0;
}
