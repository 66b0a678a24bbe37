/* fuzz_pop3.c: libFuzzer target for the POP3 core (pop3/session.c) and the RETR/TOP filter
 * (mail/dotstuff.c). The input is a client dialog; the target plays the glue, completing every
 * action the way pop3/server.c does, with outcomes (password, lock, I/O) chosen by input bits.
 *
 * Input: byte 0 picks the connection (bit 0 TLS active, bit 1 STLS offered) and the number of
 * messages (bits 2-4); bytes 1-3 are a bit stream, read cyclically, for the glue's outcomes;
 * the rest is split into lines at LF (a CR before it is stripped, as the glue does).
 * Each retrieved message's content is the whole input, so the filter sees any byte pattern.
 *
 * Checked beyond memory safety: every reply ends in CRLF; the filter's output is the same
 * whether fed whole or byte by byte, contains no early terminator, uses CRLF only, and unstuffs
 * back to the input with its line ends normalised. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mail/dotstuff.h"
#include "pop3/session.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MESSAGES 7

static struct server_config fuzz_server = {
	.domain = "example.org",
	.mailbox_password = "secret",
	.maildrop_path = "/nonexistent/maildrop",
};

static struct config fuzz_config = {
	.hostname = "mx.example.org",
	.servers = &fuzz_server,
	.server_count = 1,
};

struct bits {
	const uint8_t *bytes;
	size_t count;
	size_t at;
};

static bool bits_next(struct bits *b)
{
	bool bit;

	if (b->count == 0)
		return false;
	bit = (b->bytes[(b->at / 8) % b->count] >> (b->at % 8)) & 1;
	b->at++;
	return bit;
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_pop3: invariant broken: %s\n", what);
		abort();
	}
}

/* Whatever a call appended must be whole lines. */
static void check_reply(const struct strbuf *out, size_t before)
{
	size_t n = out->len - before;

	if (n == 0)
		return;
	check(n >= 2 && out->data[out->len - 2] == '\r' && out->data[out->len - 1] == '\n',
		"reply does not end in CRLF");
}

static char *dotstuff_whole(const uint8_t *data, size_t size, long lines, size_t chunk,
	size_t *len)
{
	struct dotstuff f;
	struct strbuf sb;
	size_t at = 0;

	strbuf_init(&sb);
	dotstuff_init(&f, lines);
	while (at < size) {
		size_t n = size - at < chunk ? size - at : chunk;

		if (!dotstuff_feed(&f, data + at, n, &sb))
			break;
		at += n;
	}
	dotstuff_finish(&f, &sb);
	*len = sb.len;
	return sb.data;
}

/* What the client must see for RETR once it unstuffs: the content with bare LF turned into
 * CRLF and a final line end added if missing. */
static void normalise(const uint8_t *data, size_t size, struct strbuf *sb)
{
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			strbuf_append(sb, "\r", 1);
		strbuf_append(sb, &data[i], 1);
	}
	if (size > 0 && data[size - 1] != '\n')
		strbuf_append_str(sb, data[size - 1] == '\r' ? "\n" : "\r\n");
}

static void check_stuffed(const char *stuffed, size_t len, const uint8_t *data, size_t size,
	long lines)
{
	struct strbuf unstuffed, expect;
	size_t body_len;

	check(len >= 3 && memcmp(stuffed + len - 3, ".\r\n", 3) == 0, "no terminator");
	body_len = len - 3;
	check(body_len == 0 || (body_len >= 2 && memcmp(stuffed + body_len - 2, "\r\n", 2) == 0),
		"terminator not at a line start");
	strbuf_init(&unstuffed);
	for (size_t i = 0; i < body_len; i++) {
		bool line_start = i == 0 || stuffed[i - 1] == '\n';

		if (stuffed[i] == '\n')
			check(i > 0 && stuffed[i - 1] == '\r', "bare LF in output");
		if (line_start && stuffed[i] == '.') {
			/* RFC 1939 3: a line starting with '.' must have been stuffed. */
			check(i + 1 < body_len && stuffed[i + 1] == '.', "unstuffed leading dot");
			continue;
		}
		strbuf_append(&unstuffed, &stuffed[i], 1);
	}
	if (lines < 0) {
		strbuf_init(&expect);
		normalise(data, size, &expect);
		check(expect.len == unstuffed.len &&
			(expect.len == 0 || memcmp(expect.data, unstuffed.data, expect.len) == 0),
			"RETR output does not unstuff to the normalised message");
		strbuf_free(&expect);
	}
	strbuf_free(&unstuffed);
}

static void fuzz_retrieve(const uint8_t *data, size_t size, long lines, struct bits *bits,
	struct strbuf *out)
{
	size_t chunk = 1 + (bits_next(bits) ? 7 : 0) + (bits_next(bits) ? 64 : 0) +
		(bits_next(bits) ? 4096 : 0);
	size_t whole_len, bytewise_len, chunked_len;
	char *whole = dotstuff_whole(data, size, lines, size ? size : 1, &whole_len);
	char *bytewise = dotstuff_whole(data, size, lines, 1, &bytewise_len);
	char *chunked = dotstuff_whole(data, size, lines, chunk, &chunked_len);

	check(whole_len == bytewise_len && memcmp(whole, bytewise, whole_len) == 0,
		"byte-at-a-time output differs");
	check(whole_len == chunked_len && memcmp(whole, chunked, whole_len) == 0,
		"chunked output differs");
	check_stuffed(whole, whole_len, data, size, lines);
	strbuf_append(out, whole, whole_len);
	free(whole);
	free(bytewise);
	free(chunked);
}

/* The deletion marks are the session's own; the harness follows them from the replies a
 * client sees: "+OK message N deleted" marks N, RSET's "+OK maildrop has ..." clears all. */
static void track_marks(const struct strbuf *out, size_t before, bool *marked, size_t count)
{
	const char *reply = out->data ? out->data + before : "";
	unsigned long number;

	if (out->len == before)
		return;
	if (sscanf(reply, "+OK message %lu deleted", &number) == 1) {
		check(number >= 1 && number <= count, "deleted number out of range");
		marked[number - 1] = true;
	} else if (strncmp(reply, "+OK maildrop has ", 17) == 0) {
		memset(marked, 0, count * sizeof(*marked));
	}
}

/* At UPDATE the list handed to the store is exactly the marked messages, ascending. */
static void check_deletions(const struct pop3_session *s, const bool *marked, size_t count)
{
	size_t n, at = 0;
	const size_t *indexes = pop3_session_deletions(s, &n);

	for (size_t i = 0; i < count; i++) {
		if (!marked[i])
			continue;
		check(at < n && indexes[at] == i, "deletion list differs from the DELE marks");
		at++;
	}
	check(at == n, "deletion list longer than the DELE marks");
}

/* The glue: completes actions until the session wants a line again (NONE) or is done. */
static enum pop3_action fuzz_glue(struct pop3_session *s, enum pop3_action action,
	struct maildrop *md, const bool *marked, const uint8_t *data, size_t size,
	struct bits *bits, struct strbuf *out)
{
	for (;;) {
		size_t before = out->len;

		switch (action) {
		case POP3_ACTION_NONE:
		case POP3_ACTION_CLOSE:
			return action;
		case POP3_ACTION_STARTTLS:
			pop3_session_tls_started(s);
			return POP3_ACTION_NONE;
		case POP3_ACTION_CHECK_PASSWORD: {
			/* A glue claiming success must still not let an unknown name in. */
			bool ok = bits_next(bits) || pop3_session_verify_password(s);

			action = pop3_session_auth_result(s, ok, out);
			break;
		}
		case POP3_ACTION_OPEN_MAILDROP: {
			enum maildrop_open_status status = MAILDROP_OPEN_OK;
			bool failed = bits_next(bits);

			check(pop3_session_maildrop_path(s) != NULL, "no maildrop path");
			if (failed && bits_next(bits))
				status = MAILDROP_OPEN_ERROR;
			else if (failed)
				status = MAILDROP_OPEN_LOCKED;
			action = pop3_session_maildrop_opened(s, status,
				status == MAILDROP_OPEN_OK ? md : NULL, out);
			break;
		}
		case POP3_ACTION_RETRIEVE: {
			const struct maildrop_message *msg = pop3_session_retrieve_message(s);
			size_t index = pop3_session_retrieve_index(s);
			long lines = pop3_session_retrieve_lines(s);
			bool ok = !bits_next(bits);

			check(msg == &md->messages[index], "retrieve index");
			check(!marked[index], "retrieving a deleted message");
			if (bits_next(bits)) {
				/* The file could not be opened: a -ERR, never a "+OK" to take back. */
				action = pop3_session_retrieve_failed(s, ENOENT, out);
				check(out->len > before && memcmp(out->data + before, "-ERR ", 5) == 0,
					"unopened message not refused");
				break;
			}
			pop3_session_retrieve_opened(s, out);
			check(out->len > before && memcmp(out->data + before, "+OK ", 4) == 0,
				"opened message without +OK");
			if (ok)
				fuzz_retrieve(data, size, lines, bits, out);
			action = pop3_session_retrieve_done(s, ok);
			break;
		}
		case POP3_ACTION_LISTING: {
			/* The glue drains the listing in parts of a budget from the input. */
			size_t budget = bits_next(bits) ? 0 : 16;
			size_t calls = 0, live = 0, lines = 0;

			while (action == POP3_ACTION_LISTING) {
				size_t part = out->len;
				action = pop3_session_listing_more(s, out, budget);
				check(out->len > part, "a listing part made no progress");
				check(out->len - part <= (budget ? budget - 1 : 0) +
					POP3_LISTING_LINE_MAX, "a listing part over its bound");
				check(++calls <= md->count + 1, "listing longer than the maildrop");
			}
			/* One line per message not marked deleted, then the terminator. */
			for (size_t i = 0; i < md->count; i++)
				live += !marked[i];
			for (size_t i = before; i + 1 < out->len; i++)
				lines += out->data[i] == '\r' && out->data[i + 1] == '\n';
			check(lines == live + 1, "listing lines differ from the messages not deleted");
			check(memcmp(out->data + out->len - 3, ".\r\n", 3) == 0,
				"listing without its terminator");
			break;
		}
		case POP3_ACTION_COMMIT:
			check(pop3_session_state(s) == POP3_STATE_UPDATE, "commit outside UPDATE");
			check_deletions(s, marked, md->count);
			action = pop3_session_commit_done(s, !bits_next(bits), out);
			check(action == POP3_ACTION_CLOSE, "commit did not close");
			break;
		}
		check_reply(out, before);
	}
}

/* The counts STAT reports are kept up to date by DELE/RSET; they must match the marks. */
static void check_stat(struct pop3_session *s, const struct maildrop *md, const bool *marked,
	struct strbuf *out)
{
	char expect[64];
	size_t count = 0;
	uint64_t octets = 0;

	for (size_t i = 0; i < md->count; i++) {
		if (!marked[i]) {
			count++;
			octets += md->messages[i].size;
		}
	}
	snprintf(expect, sizeof(expect), "+OK %zu %" PRIu64 "\r\n", count, octets);
	strbuf_reset(out);
	if (pop3_session_feed_line(s, "STAT", 4, out) == POP3_ACTION_NONE)
		check(strcmp(out->data, expect) == 0, "STAT does not match the deletion marks");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maildrop_message messages[FUZZ_MAX_MESSAGES];
	bool marked[FUZZ_MAX_MESSAGES] = {false};
	struct maildrop md = {.path = "/nonexistent/maildrop", .lock_fd = -1,
		.messages = messages};
	struct pop3_session_params params = {.cfg = &fuzz_config};
	struct bits bits = {0};
	struct pop3_session *s;
	struct strbuf out;
	enum pop3_action action;
	const uint8_t *p, *end;

	log_set_level(LOG_LEVEL_ERROR);
	if (size < 1)
		return 0;
	params.tls_active = data[0] & 1;
	params.stls_offered = (data[0] >> 1) & 1;
	md.count = (data[0] >> 2) & 7;
	memset(messages, 0, sizeof(messages));
	for (size_t i = 0; i < md.count; i++) {
		messages[i].path = "/nonexistent/message";
		messages[i].size = (uint64_t)size * (i + 1);
		snprintf(messages[i].uidl, sizeof(messages[i].uidl), "uid%zu", i);
	}
	bits.bytes = data + 1;
	bits.count = size > 4 ? 3 : size - 1;

	strbuf_init(&out);
	s = pop3_session_new(&params);
	pop3_session_greeting(s, &out);
	check_reply(&out, 0);
	p = data + 1 + bits.count;
	end = data + size;
	while (p < end) {
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *line_end = lf ? lf : end;
		size_t len = (size_t)(line_end - p);
		size_t before;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		strbuf_reset(&out); /* the glue has flushed it */
		before = out.len;
		if (len > POP3_COMMAND_LINE_MAX && bits_next(&bits))
			action = pop3_session_line_too_long(s, &out);
		else
			action = pop3_session_feed_line(s, (const char *)p, len, &out);
		check_reply(&out, before);
		track_marks(&out, before, marked, md.count);
		action = fuzz_glue(s, action, &md, marked, data, size, &bits, &out);
		if (action == POP3_ACTION_CLOSE)
			break;
		p = lf ? lf + 1 : end;
	}
	if (pop3_session_state(s) == POP3_STATE_TRANSACTION)
		check_stat(s, &md, marked, &out);
	pop3_session_free(s);
	strbuf_free(&out);
	return 0;
}
