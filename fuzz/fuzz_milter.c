/* fuzz_milter.c: the milter reply parser and the end-of-message folding
 * (src/filter/milter_codec.c) on an arbitrary stream of replies, framed as on the wire: each
 * packet is copied alone (ASan sees no slack after it), a packet over MILTER_PACKET_MAX ends
 * the stream as the client does, and the result always holds at most MILTER_CHANGES_MAX
 * well-formed changes, a terminated printable quarantine reason, and for a 4xx/5xx verdict
 * an SMTP reply of CRLF-separated lines that fits its buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/milter_codec.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const char *reply)
{
	size_t n = strnlen(reply, MILTER_SMTP_REPLY_MAX);
	if (n >= MILTER_SMTP_REPLY_MAX || n < 3)
		abort();
	if (reply[0] != '4' && reply[0] != '5')
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)reply[i];
		if (c == '\r' && reply[i + 1] == '\n' && i + 5 <= n) {
			if (memcmp(reply + i + 2, reply, 3) != 0)
				abort();
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			abort();
	}
}

static void check_result(const struct milter_result *r)
{
	if (r->change_count > MILTER_CHANGES_MAX)
		abort();
	for (size_t i = 0; i < r->change_count; i++) {
		const char *name = r->changes[i].name, *value = r->changes[i].value;
		if (name[0] == '\0' || strchr(name, ':') || strchr(name, ' '))
			abort();
		for (size_t j = 0; value[j]; j++)
			if (value[j] == '\n' && value[j + 1] != ' ' && value[j + 1] != '\t')
				abort();
	}
	size_t q = strnlen(r->quarantine_reason, sizeof(r->quarantine_reason));
	if (q >= sizeof(r->quarantine_reason))
		abort();
	for (size_t i = 0; i < q; i++)
		if ((unsigned char)r->quarantine_reason[i] < 0x20)
			abort();
	if (r->verdict == MILTER_REJECT || r->verdict == MILTER_TEMPFAIL)
		check_reply(r->reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct milter_result r;
	unsigned dropped = 0;
	size_t pos = 0, packet_len;

	if (!quiet) {
		log_set_level(LOG_LEVEL_ERROR);
		quiet = true;
	}
	milter_result_init(&r);
	/* The first octet picks the negotiated actions, as SMFIC_OPTNEG would. */
	uint32_t actions = size ? data[0] & 0x3f : MILTER_ACTIONS_OFFERED;
	if (size)
		pos = 1;
	while (pos < size) {
		enum milter_frame_status st = milter_frame(data + pos, size - pos, &packet_len);
		if (st != MILTER_FRAME_OK)
			break;
		if (packet_len < 5 || packet_len > (size_t)MILTER_PACKET_MAX + 4)
			abort();
		char *packet = malloc(packet_len - 4);
		if (!packet)
			break;
		memcpy(packet, data + pos + 4, packet_len - 4);
		pos += packet_len;
		struct milter_reply reply;
		enum milter_eom_step step = MILTER_EOM_ERROR;
		if (milter_reply_parse(packet, packet_len - 4, &reply))
			step = milter_result_apply_eom(&r, &reply, actions, &dropped);
		free(packet);
		check_result(&r);
		if (step != MILTER_EOM_MORE)
			break;
	}
	milter_result_free(&r);
	return 0;
}
