/* fuzz_smtp.c: libFuzzer target for the SMTP session (smtp/session.c, smtp/address.c,
 * smtp/data.c, mail/trace.c) driven the way smtp/server.c drives it: the input is a client's
 * byte stream, cut into command lines at LF (CR before it dropped), and raw DATA bytes after
 * 354. Aborts when a reply is malformed or a command line goes unanswered. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "limits.h"
#include "log.h"
#include "smtp/session.h"
#include "mail/trace.h"
#include "strbuf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two domains, a blocked address and small limits so the fuzzer reaches them quickly. */
static const char config_json[] =
	"{\"Hostname\": \"mx.example.org\", \"Servers\": ["
	"{\"Domain\": \"example.org\", \"MailboxPassword\": \"pw\", \"MaildropPath\": \"/tmp/x\", "
	"\"BlockedAddresses\": [\"blocked@example.org\"]}, "
	"{\"Domain\": \"example.net\", \"MailboxPassword\": \"pw\", \"MaildropPath\": \"/tmp/y\"}], "
	"\"MaxRecipients\": 5, \"MaxMessageSize\": 2000}";

static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	if (config_load_string(config_json, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_smtp: config does not load: %s\n", err);
		abort();
	}
	return 0;
}

/* Every reply line is "DDD" then ' ' or '-', ends in CRLF and has no other CR or LF; the
 * last line is not a continuation. */
static void check_replies(const struct strbuf *out)
{
	const char *last = NULL;
	size_t i = 0;

	while (i < out->len) {
		const char *line = out->data + i;
		const char *lf = memchr(line, '\n', out->len - i);
		size_t n;

		if (!lf)
			abort();
		n = (size_t)(lf - line) + 1;
		if (n < 6 || line[n - 2] != '\r' || memchr(line, '\r', n - 2))
			abort();
		for (int d = 0; d < 3; d++)
			if (line[d] < '0' || line[d] > '9')
				abort();
		if (line[3] != ' ' && line[3] != '-')
			abort();
		last = line;
		i += n;
	}
	if (last && last[3] != ' ')
		abort();
}

/* The storage opened, or not: DATA gets its one reply, 354 or a 4xx. */
static bool storage_ready(struct smtp_session *s, int storage_error, struct strbuf *out)
{
	strbuf_reset(out);
	if (storage_error)
		smtp_session_storage_failed(s, storage_error, out);
	else
		smtp_session_data_ready(s, out);
	check_replies(out);
	if (out->len == 0)
		abort();
	/* A refused DATA ends the transaction (READY); an accepted one reads the message. */
	if (smtp_session_state(s) != (storage_error ? SMTP_STATE_READY : SMTP_STATE_DATA) ||
	    (memcmp(out->data, "354 ", 4) == 0) == (storage_error != 0))
		abort();
	return storage_error == 0;
}

/* What the glue does at SMTP_ACTION_BEGIN_DATA: a queue id and the trace headers of each
 * maildrop; storage may fail with storage_error (0: it does not; decided by the input), which
 * answers DATA, else the 354 comes. Returns whether the data phase began. */
static bool begin_data(struct smtp_session *s, int storage_error, struct strbuf *out)
{
	const struct server_config *servers[8];
	struct strbuf headers;
	size_t n;

	smtp_session_set_queue_id(s, "FUZZ0000");
	const struct smtp_tx *tx = smtp_session_tx(s);
	strbuf_init(&headers);
	if (tx->submitter) {
		/* The owner's mail: one Received field; the rest is done at commit. */
		mail_trace_received(&headers, s, cfg.hostname, NULL, (time_t)1700000000);
		if (headers.len == 0 || memcmp(headers.data, "Received: ", 10) != 0)
			abort();
		strbuf_free(&headers);
		return storage_ready(s, storage_error, out);
	}
	n = smtp_tx_servers(tx, servers, 8);
	if (n == 0 || n > cfg.server_count || tx->relay_count != 0)
		abort(); /* unauthenticated DATA only has recipients at configured domains */
	for (size_t i = 0; i < n; i++) {
		mail_trace_headers(&headers, s, servers[i], cfg.hostname, (time_t)1700000000);
		if (headers.len == 0 || memcmp(headers.data, "Return-Path: <", 14) != 0)
			abort();
		strbuf_reset(&headers);
	}
	strbuf_free(&headers);
	return storage_ready(s, storage_error, out);
}

/* Feeds the DATA bytes at in[0..len) in chunks of 1 to 16 octets (cut by the bytes
 * themselves) until the end of data. Returns the bytes consumed. */
static size_t feed_data(struct smtp_session *s, const char *in, size_t len)
{
	char chunk_out[17];
	size_t pos = 0;

	while (pos < len && !smtp_session_data_done(s)) {
		size_t n = ((unsigned char)in[pos] & 15) + 1;
		size_t out_len;

		if (n > len - pos)
			n = len - pos;
		size_t used = smtp_session_feed_data(s, in + pos, n, chunk_out, &out_len);
		if (used > n || out_len > n + 1 || (used < n && !smtp_session_data_done(s)))
			abort();
		pos += used;
	}
	return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct smtp_session_params params = {
		.cfg = &cfg,
		.client_ip = "192.0.2.1",
		.tls_available = size & 1,
		.tls_active = false,
	};
	struct smtp_session *s = smtp_session_new(&params);
	struct strbuf out;
	size_t pos = 0;
	unsigned messages = 0;

	strbuf_init(&out);
	smtp_session_greeting(s, &out);
	check_replies(&out);
	while (pos < size && smtp_session_state(s) != SMTP_STATE_CLOSED) {
		const char *lf = memchr(in + pos, '\n', size - pos);
		size_t line_len, next;
		enum smtp_action action;

		if (!lf)
			break; /* no complete line: the glue waits for more */
		line_len = (size_t)(lf - (in + pos));
		next = pos + line_len + 1;
		if (line_len && in[pos + line_len - 1] == '\r')
			line_len--;
		strbuf_reset(&out);
		if (line_len > SMTP_COMMAND_LINE_MAX)
			action = smtp_session_line_too_long(s, &out);
		else
			action = smtp_session_feed_line(s, in + pos, line_len, &out);
		pos = next;
		/* Every command line in a command state gets a complete reply, except credentials,
		 * which are answered once the glue has checked them, and DATA, answered once the
		 * glue has opened the storage. */
		if (out.len == 0 && action != SMTP_ACTION_CHECK_AUTH &&
		    action != SMTP_ACTION_BEGIN_DATA)
			abort();
		check_replies(&out);

		switch (action) {
		case SMTP_ACTION_NONE:
			break;
		case SMTP_ACTION_CLOSE:
			if (smtp_session_state(s) != SMTP_STATE_CLOSED)
				abort();
			break;
		case SMTP_ACTION_STARTTLS:
			if (smtp_session_state(s) != SMTP_STATE_STARTTLS)
				abort();
			smtp_session_tls_started(s, "TLSv1.3 TLS_AES_256_GCM_SHA384");
			break;
		case SMTP_ACTION_CHECK_AUTH: {
			if (smtp_session_state(s) != SMTP_STATE_AUTH_CHECK)
				abort();
			/* The verdict is the real check, or a forced success, from the input. */
			bool ok = smtp_session_verify_password(s) ||
				(pos < size && (data[pos - 1] & 0x20) != 0);
			strbuf_reset(&out);
			smtp_session_auth_result(s, ok, &out);
			check_replies(&out);
			if (out.len == 0 || smtp_session_state(s) == SMTP_STATE_AUTH_CHECK)
				abort();
			break;
		}
		case SMTP_ACTION_BEGIN_DATA:
			if (smtp_session_state(s) != SMTP_STATE_DATA_OPENING || out.len != 0)
				abort();
			/* Every fourth message cannot be stored: a full disk or an I/O error. */
			bool opened = begin_data(s,
				(messages & 3) != 3 ? 0 : (messages & 4) ? ENOSPC : EIO, &out);
			messages++;
			if (!opened)
				break; /* DATA was refused: the next lines are commands */
			pos += feed_data(s, in + pos, size - pos);
			if (!smtp_session_data_done(s))
				break; /* input ended inside the message */
			strbuf_reset(&out);
			if (smtp_session_data_end(s, &out) == SMTP_DATA_COMMIT) {
				if (out.len != 0 || smtp_session_state(s) != SMTP_STATE_COMMITTING)
					abort();
				/* Whether the store succeeds, and why not, comes from the input too. */
				bool ok = pos >= size || (data[pos - 1] & 0x10) == 0;
				if (ok)
					smtp_session_data_committed(s, true, &out);
				else
					smtp_session_data_failed(s,
						(data[pos - 1] & 0x20) ? ENOSPC : EIO, &out);
			}
			check_replies(&out);
			if (out.len == 0 || smtp_session_state(s) != SMTP_STATE_READY)
				abort();
			break;
		}
	}
	if (smtp_session_state(s) == SMTP_STATE_DATA) {
		strbuf_reset(&out);
		smtp_session_timeout(s, &out);
		check_replies(&out);
	}
	strbuf_free(&out);
	smtp_session_free(s);
	return 0;
}
