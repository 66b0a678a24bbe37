/* fuzz_smtp_client.c: libFuzzer target for the SMTP client core (smtp/client.c), driven the
 * way the outbound glue drives it. The first octet picks the client's parameters (TLS policy,
 * credentials, 8-bit body, SMTPUTF8, DSN parameters); the rest is the remote's replies, cut
 * into lines at LF. STARTTLS and SEND_BODY actions are answered with the glue callbacks (or,
 * decided by the input, with a connection failure). Aborts when a command is malformed,
 * credentials go out without TLS, or a recipient ends without a consistent final result. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtp/client.h"
#include "strbuf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

/* Every command is one CRLF-terminated line with no other CR or LF; AUTH only over TLS. */
static void check_commands(const struct strbuf *out, bool tls_active)
{
	size_t i = 0;

	while (i < out->len) {
		const char *line = out->data + i;
		const char *lf = memchr(line, '\n', out->len - i);
		size_t n;

		if (!lf)
			abort();
		n = (size_t)(lf - line) + 1;
		if (n < 3 || line[n - 2] != '\r' || memchr(line, '\r', n - 2))
			abort();
		if (n >= 4 && memcmp(line, "AUTH", 4) == 0 && !tls_active)
			abort();
		i += n;
	}
}

/* Every recipient has a final result whose code, enhanced status and status agree. */
static void check_results(const struct smtp_client *c)
{
	if (!smtp_client_finished(c))
		abort();
	for (size_t i = 0; i < smtp_client_recipient_count(c); i++) {
		const struct smtp_client_result *r = smtp_client_result(c, i);
		char want;

		switch (r->status) {
		case SMTP_CLIENT_DELIVERED:
			want = '2';
			break;
		case SMTP_CLIENT_TEMPFAIL:
			want = '4';
			break;
		case SMTP_CLIENT_PERMFAIL:
			want = '5';
			break;
		default:
			abort();
		}
		if (r->enhanced[0] != want || r->enhanced[1] != '.')
			abort();
		if (r->code != 0 && r->code / 100 != want - '0')
			abort();
		if (r->status == SMTP_CLIENT_DELIVERED && r->code == 0)
			abort();
		if (strnlen(r->text, sizeof(r->text)) == sizeof(r->text))
			abort();
		for (const char *p = r->text; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const recipients[] = {"alice@example.net", "bob@example.net"};
	static const char *const notify[] = {"SUCCESS,FAILURE", NULL};
	static const char *const orcpt[] = {"rfc822;alice@example.net", NULL};
	static const enum smtp_client_tls policies[] = {
		SMTP_CLIENT_TLS_OPPORTUNISTIC, SMTP_CLIENT_TLS_REQUIRED, SMTP_CLIENT_TLS_NEVER,
		SMTP_CLIENT_TLS_OPPORTUNISTIC,
	};
	unsigned flags = size ? data[0] : 0;
	struct smtp_client_params params = {
		.helo_name = "mx.example.org",
		.sender = (flags & 0x80) ? "" : "owner@example.org",
		.recipients = recipients,
		.recipient_count = 2,
		.message_size = 5000,
		.tls = policies[flags & 3],
		.tls_active = flags & 4,
		.message_8bit = flags & 8,
		.needs_smtputf8 = flags & 0x10,
	};
	const char *in = (const char *)data;
	struct smtp_client *c;
	struct strbuf out;
	size_t pos = size ? 1 : 0;
	unsigned events = 0;

	if (flags & 0x20) {
		params.auth_user = "owner@example.org";
		params.auth_password = "secret";
	}
	if (flags & 0x40) {
		params.notify = notify;
		params.orcpt = orcpt;
		params.ret = "HDRS";
		params.envid = "QX1234";
	}
	c = smtp_client_new(&params);
	smtp_client_set_remote_host(c, "mx1.example.net");
	strbuf_init(&out);
	while (pos < size && !smtp_client_finished(c)) {
		const char *lf = memchr(in + pos, '\n', size - pos);
		size_t len = lf ? (size_t)(lf - (in + pos)) : size - pos;
		enum smtp_client_action action;

		strbuf_reset(&out);
		action = smtp_client_feed_line(c, in + pos, len, &out);
		pos += len + 1;
		check_commands(&out, smtp_client_tls_active(c));
		/* The glue's answer; every fourth event fails the connection instead. */
		bool fail = (++events & 3) == 0 && pos < size && (data[pos - 1] & 1);
		switch (action) {
		case SMTP_CLIENT_ACTION_NONE:
			if (smtp_client_finished(c))
				abort();
			break;
		case SMTP_CLIENT_ACTION_STARTTLS:
			if (out.len)
				abort(); /* nothing may follow STARTTLS in clear */
			if (fail) {
				smtp_client_connection_failed(c, "TLS handshake failed");
				break;
			}
			smtp_client_tls_started(c, &out);
			if (!smtp_client_tls_active(c) || out.len == 0)
				abort();
			check_commands(&out, true);
			break;
		case SMTP_CLIENT_ACTION_SEND_BODY:
			if (out.len)
				abort();
			if (fail)
				smtp_client_connection_failed(c, "write: broken pipe");
			else
				smtp_client_body_sent(c);
			break;
		case SMTP_CLIENT_ACTION_DONE:
			if (!smtp_client_finished(c))
				abort();
			break;
		}
	}
	if (!smtp_client_finished(c))
		smtp_client_connection_failed(c, "connection closed by remote");
	check_results(c);
	/* Nothing more happens once finished. */
	strbuf_reset(&out);
	if (smtp_client_feed_line(c, "250 Ok", 6, &out) != SMTP_CLIENT_ACTION_DONE || out.len)
		abort();
	strbuf_free(&out);
	smtp_client_free(c);
	return 0;
}
