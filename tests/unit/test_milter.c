/* test_milter.c: the milter client: packet encoding of each command (filter/milter_codec.c),
 * reply framing and parsing, SMTP replies of SMFIR_REPLYCODE, the end-of-message replies
 * folded into a result, and whole conversations with a scripted filter on a unix socket
 * (negotiation, bounds, the deadline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "filter/milter.h"
#include "filter/milter_codec.h"
#include "log.h"

#define assert_bytes(sb, lit) \
	do { \
		assert_int_equal((sb).len, sizeof(lit) - 1); \
		assert_memory_equal((sb).data, lit, sizeof(lit) - 1); \
	} while (0)

/* ---- encoding ---- */

static void test_optneg_is_version_actions_protocol(void **state)
{
	(void)state;
	struct strbuf sb;
	strbuf_init(&sb);
	milter_encode_optneg(&sb, 6, MILTER_ACTIONS_OFFERED, 0x1ff);
	assert_bytes(sb, "\0\0\0\x0d" "O" "\0\0\0\x06" "\0\0\0\x31" "\0\0\x01\xff");
	strbuf_free(&sb);
}

static void test_macros_leave_out_null_values(void **state)
{
	(void)state;
	struct strbuf sb;
	const char *names[] = {"j", "{tls_version}", "{i}"};
	const char *values[] = {"mx.example.org", NULL, "Q1"};
	strbuf_init(&sb);
	milter_encode_macros(&sb, SMFIC_CONNECT, names, values, 3);
	assert_bytes(sb, "\0\0\0\x1a" "DC" "j\0mx.example.org\0" "{i}\0Q1\0");
	strbuf_free(&sb);
}

static void test_connect_v4_v6_and_unknown(void **state)
{
	(void)state;
	struct strbuf sb;
	strbuf_init(&sb);
	milter_encode_connect(&sb, "h.example", '4', 25, "192.0.2.1");
	assert_bytes(sb, "\0\0\0\x18" "C" "h.example\0" "4" "\0\x19" "192.0.2.1\0");
	strbuf_reset(&sb);
	milter_encode_connect(&sb, "[::1]", '6', 0x1234, "::1");
	assert_bytes(sb, "\0\0\0\x0e" "C" "[::1]\0" "6" "\x12\x34" "::1\0");
	strbuf_reset(&sb);
	milter_encode_connect(&sb, "x", 'U', 0, NULL);
	assert_bytes(sb, "\0\0\0\x04" "C" "x\0" "U");
	strbuf_free(&sb);
}

static void test_helo_mail_rcpt(void **state)
{
	(void)state;
	struct strbuf sb;
	strbuf_init(&sb);
	milter_encode_helo(&sb, "client.example");
	assert_bytes(sb, "\0\0\0\x10" "H" "client.example\0");
	strbuf_reset(&sb);
	milter_encode_mail(&sb, "a@b.example");
	assert_bytes(sb, "\0\0\0\x0f" "M" "<a@b.example>\0");
	strbuf_reset(&sb);
	milter_encode_mail(&sb, ""); /* the null sender */
	assert_bytes(sb, "\0\0\0\x04" "M" "<>\0");
	strbuf_reset(&sb);
	milter_encode_rcpt(&sb, "o@example.org");
	assert_bytes(sb, "\0\0\0\x11" "R" "<o@example.org>\0");
	strbuf_free(&sb);
}

static void test_header_body_and_empty_commands(void **state)
{
	(void)state;
	struct strbuf sb;
	strbuf_init(&sb);
	milter_encode_header(&sb, "Subject", 7, "a\0b", 3); /* a NUL would end the string early */
	assert_bytes(sb, "\0\0\0\x0d" "L" "Subject\0" "a b\0");
	strbuf_reset(&sb);
	milter_encode_body(&sb, "line\r\n", 6);
	assert_bytes(sb, "\0\0\0\x07" "B" "line\r\n");
	strbuf_reset(&sb);
	const char cmds[] = {SMFIC_DATA, SMFIC_EOH, SMFIC_BODYEOB, SMFIC_QUIT, SMFIC_ABORT};
	for (size_t i = 0; i < sizeof(cmds); i++) {
		strbuf_reset(&sb);
		milter_encode_empty(&sb, cmds[i]);
		assert_int_equal(sb.len, 5);
		assert_memory_equal(sb.data, "\0\0\0\x01", 4);
		assert_int_equal(sb.data[4], cmds[i]);
	}
	strbuf_free(&sb);
}

static void test_header_value_as_postfix_sends_it(void **state)
{
	(void)state;
	struct strbuf sb;
	const char raw[] = "  first part\r\n\tsecond\r\n";
	strbuf_init(&sb);
	milter_header_value(raw, sizeof(raw) - 1, &sb);
	assert_string_equal(sb.data, "first part\n\tsecond");
	strbuf_reset(&sb);
	milter_header_value(" bare\n", 6, &sb);
	assert_string_equal(sb.data, "bare");
	strbuf_reset(&sb);
	milter_header_value("\r\n", 2, &sb);
	assert_int_equal(sb.len, 0);
	strbuf_free(&sb);
}

/* ---- framing and parsing ---- */

static void test_frame_bounds(void **state)
{
	(void)state;
	size_t n = 0;
	const unsigned char whole[] = {0, 0, 0, 1, 'c'};
	assert_int_equal(milter_frame(whole, 3, &n), MILTER_FRAME_INCOMPLETE);
	assert_int_equal(milter_frame(whole, 4, &n), MILTER_FRAME_INCOMPLETE);
	assert_int_equal(milter_frame(whole, 5, &n), MILTER_FRAME_OK);
	assert_int_equal(n, 5);
	const unsigned char zero[] = {0, 0, 0, 0};
	assert_int_equal(milter_frame(zero, 4, &n), MILTER_FRAME_BAD);
	const unsigned char max[] = {0, 1, 0, 0}; /* MILTER_PACKET_MAX: allowed */
	assert_int_equal(milter_frame(max, 4, &n), MILTER_FRAME_INCOMPLETE);
	const unsigned char over[] = {0, 1, 0, 1};
	assert_int_equal(milter_frame(over, 4, &n), MILTER_FRAME_BAD);
	const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
	assert_int_equal(milter_frame(huge, 4, &n), MILTER_FRAME_BAD);
}

static void test_parse_each_reply(void **state)
{
	(void)state;
	struct milter_reply r;
	assert_true(milter_reply_parse("O\0\0\0\x06\0\0\0\x11\0\0\x04\0", 13, &r));
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, 0x11);
	assert_int_equal(r.protocol, 0x400);
	assert_false(milter_reply_parse("O\0\0\0\x06\0\0\0\x11\0\0\x04", 12, &r));

	assert_true(milter_reply_parse("hX-A\0v\0", 7, &r));
	assert_string_equal(r.name, "X-A");
	assert_string_equal(r.value, "v");
	assert_false(milter_reply_parse("hX-A\0v", 6, &r)); /* value not terminated */
	assert_false(milter_reply_parse("hX-A", 4, &r));

	assert_true(milter_reply_parse("i\0\0\0\x02X-B\0w\0", 11, &r));
	assert_int_equal(r.index, 2);
	assert_string_equal(r.name, "X-B");
	assert_true(milter_reply_parse("m\0\0\0\x01Subject\0\0", 14, &r));
	assert_int_equal(r.index, 1);
	assert_string_equal(r.value, "");
	assert_false(milter_reply_parse("m\0\0\0", 4, &r));

	assert_true(milter_reply_parse("y550 5.7.1 no\0", 14, &r));
	assert_string_equal(r.value, "550 5.7.1 no");
	assert_false(milter_reply_parse("y550", 4, &r));
	assert_true(milter_reply_parse("qwhy\0", 5, &r));
	assert_string_equal(r.value, "why");
	assert_true(milter_reply_parse("c", 1, &r));
	assert_int_equal(r.command, 'c');
	assert_true(milter_reply_parse("Zanything", 9, &r));
	assert_int_equal(r.command, 'Z');
	assert_false(milter_reply_parse("", 0, &r));
}

/* ---- SMFIR_REPLYCODE ---- */

static void test_replycode_single_and_multi_line(void **state)
{
	(void)state;
	char reply[MILTER_SMTP_REPLY_MAX];
	enum milter_verdict v = MILTER_ACCEPT;
	assert_true(milter_replycode_parse("550 5.7.1 Spam", reply, &v));
	assert_string_equal(reply, "550 5.7.1 Spam");
	assert_int_equal(v, MILTER_REJECT);
	assert_true(milter_replycode_parse("451-4.7.1 a\r\n451 4.7.1 b", reply, &v));
	assert_string_equal(reply, "451-4.7.1 a\r\n451 4.7.1 b");
	assert_int_equal(v, MILTER_TEMPFAIL);
	assert_true(milter_replycode_parse("554-one\n554 two", reply, &v)); /* bare LF */
	assert_string_equal(reply, "554-one\r\n554 two");
	assert_true(milter_replycode_parse("554", reply, &v));
	assert_string_equal(reply, "554");
	assert_true(milter_replycode_parse("550 tab\there", reply, &v));
	assert_string_equal(reply, "550 tab here");
}

static void test_replycode_malformed_is_refused(void **state)
{
	(void)state;
	char reply[MILTER_SMTP_REPLY_MAX] = "untouched";
	enum milter_verdict v = MILTER_ACCEPT;
	const char *bad[] = {"250 ok", "55 short", "5x0 no", "", "550-only a continuation",
		"550-a\r\n551 b", "550 a\r\n550 b", "550x", "550-a\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(milter_replycode_parse(bad[i], reply, &v));
	assert_string_equal(reply, "untouched");
	assert_int_equal(v, MILTER_ACCEPT);
}

static void test_replycode_too_long_is_cut_at_a_line(void **state)
{
	(void)state;
	char text[4000], reply[MILTER_SMTP_REPLY_MAX];
	enum milter_verdict v;
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "550%c%060d\r\n", i < 39 ? '-' : ' ',
			i);
	text[n - 2] = '\0';
	assert_true(milter_replycode_parse(text, reply, &v));
	assert_true(strlen(reply) < MILTER_SMTP_REPLY_MAX);
	const char *last = strrchr(reply, '\n');
	assert_non_null(last);
	assert_memory_equal(last + 1, "550 ", 4); /* the kept part ends with a last line */
	assert_int_equal(strlen(last + 1), 64);

	memset(text, 'a', 3000);
	memcpy(text, "550 ", 4);
	text[3000] = '\0';
	assert_true(milter_replycode_parse(text, reply, &v));
	assert_int_equal(strlen(reply), MILTER_SMTP_REPLY_MAX - 1);
}

/* ---- end-of-message replies ---- */

static enum milter_eom_step apply(struct milter_result *r, const char *packet, size_t len,
	uint32_t actions, unsigned *dropped)
{
	struct milter_reply reply;
	assert_true(milter_reply_parse(packet, len, &reply));
	return milter_result_apply_eom(r, &reply, actions, dropped);
}

#define APPLY(r, lit, actions, dropped) apply(r, lit, sizeof(lit) - 1, actions, dropped)

static void test_eom_final_replies(void **state)
{
	(void)state;
	struct milter_result r;
	unsigned dropped = 0;
#define CASE(lit, verdict, reply) {lit, sizeof(lit) - 1, verdict, reply}
	struct {
		const char *packet;
		size_t len;
		enum milter_verdict verdict;
		const char *reply;
	} cases[] = {
		CASE("c", MILTER_ACCEPT, ""),
		CASE("a", MILTER_ACCEPT, ""),
		CASE("r", MILTER_REJECT, "550 5.7.1 Message rejected"),
		CASE("t", MILTER_TEMPFAIL, "451 4.7.1 Try again later"),
		CASE("d", MILTER_DISCARD, ""),
		CASE("y554 5.7.1 Gtube pattern\0", MILTER_REJECT, "554 5.7.1 Gtube pattern"),
		CASE("y421 4.3.2 busy\0", MILTER_TEMPFAIL, "421 4.3.2 busy"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		milter_result_init(&r);
		assert_int_equal(apply(&r, cases[i].packet, cases[i].len, MILTER_ACTIONS_OFFERED,
			&dropped), MILTER_EOM_FINAL);
		assert_int_equal(r.verdict, cases[i].verdict);
		assert_string_equal(r.reply, cases[i].reply);
		milter_result_free(&r);
	}
	milter_result_init(&r);
	assert_int_equal(APPLY(&r, "y250 ok\0", MILTER_ACTIONS_OFFERED, &dropped),
		MILTER_EOM_ERROR);
	assert_true(strstr(r.error, "REPLYCODE") != NULL);
}

static void test_eom_changes_quarantine_progress(void **state)
{
	(void)state;
	struct milter_result r;
	unsigned dropped = 0;
	milter_result_init(&r);
	assert_int_equal(APPLY(&r, "hX-A\0one\0", MILTER_ACTIONS_OFFERED, &dropped),
		MILTER_EOM_MORE);
	assert_int_equal(APPLY(&r, "i\0\0\0\0X-B\0two\n\tfolded\0", MILTER_ACTIONS_OFFERED,
		&dropped), MILTER_EOM_MORE);
	assert_int_equal(APPLY(&r, "m\0\0\0\x01Subject\0\0", MILTER_ACTIONS_OFFERED,
		&dropped), MILTER_EOM_MORE);
	assert_int_equal(APPLY(&r, "p", MILTER_ACTIONS_OFFERED, &dropped), MILTER_EOM_MORE);
	assert_int_equal(APPLY(&r, "qspam\x01here\0", MILTER_ACTIONS_OFFERED, &dropped),
		MILTER_EOM_MORE);
	assert_int_equal(APPLY(&r, "c", MILTER_ACTIONS_OFFERED, &dropped), MILTER_EOM_FINAL);
	assert_int_equal(r.verdict, MILTER_ACCEPT);
	assert_int_equal(r.change_count, 3);
	assert_int_equal(r.changes[0].kind, MILTER_ADD_HEADER);
	assert_string_equal(r.changes[0].name, "X-A");
	assert_string_equal(r.changes[0].value, "one");
	assert_int_equal(r.changes[1].kind, MILTER_INSERT_HEADER);
	assert_int_equal(r.changes[1].index, 0);
	assert_string_equal(r.changes[1].value, "two\n\tfolded");
	assert_int_equal(r.changes[2].kind, MILTER_CHANGE_HEADER);
	assert_int_equal(r.changes[2].index, 1);
	assert_string_equal(r.changes[2].value, ""); /* removes the field */
	assert_true(r.quarantine);
	assert_string_equal(r.quarantine_reason, "spam here");
	assert_int_equal(dropped, 0);
	milter_result_free(&r);
	assert_null(r.changes);
}

static void test_eom_ignores_what_was_not_negotiated_or_is_malformed(void **state)
{
	(void)state;
	struct milter_result r;
	unsigned dropped = 0;
	milter_result_init(&r);
	APPLY(&r, "hX-A\0one\0", SMFIF_QUARANTINE, &dropped);     /* ADDHDRS not agreed */
	APPLY(&r, "m\0\0\0\x01X\0v\0", SMFIF_ADDHDRS, &dropped);   /* CHGHDRS not agreed */
	APPLY(&r, "qwhy\0", SMFIF_ADDHDRS, &dropped);              /* QUARANTINE not agreed */
	APPLY(&r, "hBad Name\0v\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "hX:Y\0v\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "h\0v\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "hX-Inj\0v\r\nBcc: x\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "hX-Inj\0v\nX: y\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "hX-Inj\0v\rw\0", MILTER_ACTIONS_OFFERED, &dropped);
	APPLY(&r, "+<x@y>\0", 0xffffffffu, &dropped); /* a recipient change: not offered */
	APPLY(&r, "bbody", 0xffffffffu, &dropped);
	assert_int_equal(APPLY(&r, "s", MILTER_ACTIONS_OFFERED, &dropped), MILTER_EOM_MORE);
	assert_int_equal(r.change_count, 0);
	assert_false(r.quarantine);
	milter_result_free(&r);
}

static void test_eom_changes_are_capped(void **state)
{
	(void)state;
	struct milter_result r;
	unsigned dropped = 0;
	milter_result_init(&r);
	for (int i = 0; i < MILTER_CHANGES_MAX + 7; i++)
		assert_int_equal(APPLY(&r, "hX-A\0v\0", MILTER_ACTIONS_OFFERED, &dropped),
			MILTER_EOM_MORE);
	assert_int_equal(r.change_count, MILTER_CHANGES_MAX);
	assert_int_equal(dropped, 7);
	milter_result_free(&r);
}

/* ---- whole conversations with a scripted filter on a unix socket ---- */

struct script {
	int listen_fd;
	char optneg[32];    /* the SMFIC_OPTNEG reply to send */
	size_t optneg_len;
	const char *eom;    /* sent after SMFIC_BODYEOB (NULL: never answers) */
	size_t eom_len;
	char commands[64];  /* the commands received, in order (macros left out) */
};

static bool read_packet(int fd, char *cmd)
{
	unsigned char head[4];
	static char buf[70000];
	if (recv(fd, head, 4, MSG_WAITALL) != 4)
		return false;
	uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | head[2] << 8 | head[3];
	if (n == 0 || n > sizeof(buf) || recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n)
		return false;
	*cmd = buf[0];
	return true;
}

static void *scripted_filter(void *arg)
{
	struct script *s = arg;
	int fd = accept(s->listen_fd, NULL, NULL);
	size_t count = 0;
	char cmd;
	if (fd < 0)
		return NULL;
	while (read_packet(fd, &cmd)) {
		if (cmd != SMFIC_MACRO && count < sizeof(s->commands) - 1)
			s->commands[count++] = cmd;
		if (cmd == SMFIC_OPTNEG)
			(void)!write(fd, s->optneg, s->optneg_len);
		else if (cmd == SMFIC_BODYEOB && s->eom)
			(void)!write(fd, s->eom, s->eom_len);
	}
	close(fd);
	return NULL;
}

/* Runs milter_check against a filter that asks to skip every step before the end of the
 * message (so only SMFIC_OPTNEG and SMFIC_BODYEOB get answers), unless optneg says else. */
static void converse(struct script *s, const char *optneg, size_t optneg_len, unsigned timeout,
	struct milter_result *r)
{
	char dir[] = "/tmp/test_milter.XXXXXX", spec[128], path[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.sock", dir);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memcpy(sun.sun_path, path, strlen(path) + 1);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->listen_fd, 1), 0);
	memcpy(s->optneg, optneg, optneg_len);
	s->optneg_len = optneg_len;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, scripted_filter, s), 0);

	char file[128];
	snprintf(file, sizeof(file), "%s/msg", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("Subject: hi\r\n\r\nbody\r\n", f);
	fclose(f);
	int fd = open(file, O_RDONLY);
	const char *rcpts[] = {"o@example.org"};
	struct milter_envelope env = {.client_ip = "192.0.2.1", .client_port = 1, .helo = "h",
		.mail_from = "a@b", .rcpts = rcpts, .rcpt_count = 1, .queue_id = "Q",
		.hostname = "mx.example.org"};
	milter_check(spec, timeout, &env, NULL, 0, fd, 0, r);
	close(fd);
	pthread_join(t, NULL);
	close(s->listen_fd);
	unlink(file);
	unlink(path);
	rmdir(dir);
}

#define EOM_ADD_ONLY "\0\0\0\x07" "hX-A\0v\0"
#define EOM_ADD_CONTINUE EOM_ADD_ONLY "\0\0\0\x01" "c"
#define EOM_OVERSIZED "\0\x01\0\x01" "y550 x" /* MILTER_PACKET_MAX + 1 */
#define SKIP_ALL "\0\0\x02\x7f" /* every SMFIP_NO* step */
#define OPTNEG(actions, protocol) "\0\0\0\x0d" "O" "\0\0\0\x06" actions protocol

static void test_negotiated_skips_are_honoured(void **state)
{
	(void)state;
	struct script s = {.eom = EOM_ADD_CONTINUE, .eom_len = sizeof(EOM_ADD_CONTINUE) - 1};
	struct milter_result r;
	const char optneg[] = OPTNEG("\0\0\0\x01", SKIP_ALL);
	converse(&s, optneg, sizeof(optneg) - 1, 5, &r);
	assert_int_equal(r.verdict, MILTER_ACCEPT);
	assert_int_equal(r.change_count, 1);
	assert_string_equal(r.changes[0].name, "X-A");
	assert_string_equal(s.commands, "OEQ");
	milter_result_free(&r);
}

static void test_negotiation_failures(void **state)
{
	(void)state;
	struct milter_result r;
	struct script s = {0};
	const char unoffered[] = OPTNEG("\0\0\0\x01", "\0\x10\0\0"); /* SMFIP_HDR_LEADSPC */
	converse(&s, unoffered, sizeof(unoffered) - 1, 5, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
	assert_true(strstr(r.error, "protocol steps") != NULL);

	memset(&s, 0, sizeof(s));
	const char v1[] = "\0\0\0\x0d" "O" "\0\0\0\x01" "\0\0\0\x01" SKIP_ALL;
	converse(&s, v1, sizeof(v1) - 1, 5, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
	assert_true(strstr(r.error, "version") != NULL);

	memset(&s, 0, sizeof(s));
	const char other[] = "\0\0\0\x01" "c";
	converse(&s, other, sizeof(other) - 1, 5, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
}

static void test_oversized_packet_fails(void **state)
{
	(void)state;
	struct script s = {.eom = EOM_OVERSIZED, .eom_len = sizeof(EOM_OVERSIZED) - 1};
	struct milter_result r;
	const char optneg[] = OPTNEG("\0\0\0\x01", SKIP_ALL);
	converse(&s, optneg, sizeof(optneg) - 1, 5, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
	assert_true(strstr(r.error, "octets") != NULL);
}

static void test_failure_drops_changes_already_taken(void **state)
{
	(void)state;
	/* A change, then no verdict before the deadline. */
	struct script s = {.eom = EOM_ADD_ONLY, .eom_len = sizeof(EOM_ADD_ONLY) - 1};
	struct milter_result r;
	const char optneg[] = OPTNEG("\0\0\0\x01", SKIP_ALL);
	converse(&s, optneg, sizeof(optneg) - 1, 1, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
	assert_int_equal(r.change_count, 0);
	milter_result_free(&r);
}

static void test_silent_filter_fails_at_the_deadline(void **state)
{
	(void)state;
	struct script s = {.eom = NULL};
	struct milter_result r;
	const char optneg[] = OPTNEG("\0\0\0\x01", SKIP_ALL);
	/* The scripted filter returns once the client closes, after its 1 s deadline. */
	converse(&s, optneg, sizeof(optneg) - 1, 1, &r);
	assert_int_equal(r.verdict, MILTER_FAILED);
	assert_true(strstr(r.error, "timed out") != NULL);
}

static void test_spec_validation(void **state)
{
	(void)state;
	char err[128];
	const char *good[] = {"inet:127.0.0.1:11332", "inet:[::1]:1", "inet:rspamd.local:65535",
		"unix:/run/rspamd/milter.sock"};
	const char *bad[] = {"", "inet:", "inet:host", "inet::25", "inet:host:0", "inet:host:65536",
		"inet:host:2x", "inet:::1:25", "inet:[::1:25", "unix:", "unix:relative/path",
		"tcp:host:25", "inet:host:123456"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(milter_spec_valid(good[i], err, sizeof(err)));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_false(milter_spec_valid(bad[i], err, sizeof(err)));
		assert_true(err[0] != '\0');
	}
	char longpath[200] = "unix:/";
	memset(longpath + 6, 'a', 150);
	longpath[156] = '\0';
	assert_false(milter_spec_valid(longpath, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_optneg_is_version_actions_protocol),
		cmocka_unit_test(test_macros_leave_out_null_values),
		cmocka_unit_test(test_connect_v4_v6_and_unknown),
		cmocka_unit_test(test_helo_mail_rcpt),
		cmocka_unit_test(test_header_body_and_empty_commands),
		cmocka_unit_test(test_header_value_as_postfix_sends_it),
		cmocka_unit_test(test_frame_bounds),
		cmocka_unit_test(test_parse_each_reply),
		cmocka_unit_test(test_replycode_single_and_multi_line),
		cmocka_unit_test(test_replycode_malformed_is_refused),
		cmocka_unit_test(test_replycode_too_long_is_cut_at_a_line),
		cmocka_unit_test(test_eom_final_replies),
		cmocka_unit_test(test_eom_changes_quarantine_progress),
		cmocka_unit_test(test_eom_ignores_what_was_not_negotiated_or_is_malformed),
		cmocka_unit_test(test_eom_changes_are_capped),
		cmocka_unit_test(test_negotiated_skips_are_honoured),
		cmocka_unit_test(test_negotiation_failures),
		cmocka_unit_test(test_oversized_packet_fails),
		cmocka_unit_test(test_failure_drops_changes_already_taken),
		cmocka_unit_test(test_silent_filter_fails_at_the_deadline),
		cmocka_unit_test(test_spec_validation),
	};
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
