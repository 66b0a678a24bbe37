/* test_sendas.c: the header section parser (mail/headers.c) and send-as (mail/sendas.c): the
 * "[sendas:NAME]" tag in plain, folded and RFC 2047 encoded Subjects, the From rewrite with
 * its display name kept, the messages left alone, Date/Message-ID added only when missing,
 * and every untouched octet written back as it came. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/headers.h"
#include "mail/sendas.h"
#include "strbuf.h"

#define DOMAIN "example.org"

/* What one send-as run over a whole message gave. */
struct outcome {
	enum sendas_result result;
	char sender[SMTP_PATH_MAX + 1];
	char *message; /* headers as serialized, then the body as received */
};

static void message_rebuild(const struct mail_headers *h, const char *msg, size_t header_len,
	struct strbuf *out)
{
	strbuf_init(out);
	mail_headers_serialize(h, out);
	strbuf_append(out, msg + header_len, strlen(msg) - header_len);
}

static struct outcome run_sendas(const char *msg)
{
	struct outcome o = {.sender = "untouched"};
	struct mail_headers h;
	size_t header_len;
	struct strbuf out;

	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	o.result = sendas_apply(&h, DOMAIN, o.sender);
	message_rebuild(&h, msg, header_len, &out);
	mail_headers_free(&h);
	o.message = out.data;
	return o;
}

/* Asserts that send-as turns msg into want with envelope sender sender. */
static void assert_sendas(const char *msg, const char *want, const char *sender)
{
	struct outcome o = run_sendas(msg);

	assert_int_equal(o.result, SENDAS_APPLIED);
	assert_string_equal(o.message, want);
	assert_string_equal(o.sender, sender);
	free(o.message);
}

/* Asserts that send-as leaves msg byte-identical, with the given result. */
static void assert_unchanged(const char *msg, enum sendas_result result)
{
	struct outcome o = run_sendas(msg);

	assert_int_equal(o.result, result);
	assert_string_equal(o.message, msg);
	assert_string_equal(o.sender, "untouched");
	free(o.message);
}

/* A message with the given Subject line and From line. */
static char *message_with(const char *from, const char *subject)
{
	struct strbuf sb;

	strbuf_init(&sb);
	strbuf_appendf(&sb, "%sTo: bob@example.net\r\n%sMIME-Version: 1.0\r\n\r\nHi Bob\r\n",
		from, subject);
	return sb.data;
}

static void assert_subject_becomes(const char *subject, const char *want_subject)
{
	char *msg = message_with("From: mailbox@example.org\r\n", subject);
	char *want = message_with("From: shop@example.org\r\n", want_subject);

	assert_sendas(msg, want, "shop@example.org");
	free(msg);
	free(want);
}

static void assert_from_becomes(const char *from, const char *want_from)
{
	char *msg = message_with(from, "Subject: [sendas:shop] hi\r\n");
	char *want = message_with(want_from, "Subject: hi\r\n");

	assert_sendas(msg, want, "shop@example.org");
	free(msg);
	free(want);
}

static void assert_subject_unchanged(const char *subject, enum sendas_result result)
{
	char *msg = message_with("From: mailbox@example.org\r\n", subject);

	assert_unchanged(msg, result);
	free(msg);
}

/* An independent RFC 2047 reader for checking what we write: unfolds, decodes B and Q words
 * and drops the whitespace between adjacent words (6.2). Charset-blind: returns the octets. */
static bool test_decode_word(const char *s, const char **end, struct strbuf *out)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *q1, *q2, *q3;

	if (strncmp(s, "=?", 2) != 0 || !(q1 = strchr(s + 2, '?')) || !(q2 = strchr(q1 + 1, '?')) ||
	    !(q3 = strstr(q2 + 1, "?=")) || q2 != q1 + 2)
		return false;
	if (q1[1] == 'B' || q1[1] == 'b') {
		unsigned bits = 0;
		int n = 0;
		for (const char *p = q2 + 1; p < q3 && *p != '='; p++) {
			bits = bits << 6 | (unsigned)(strchr(b64, *p) - b64);
			if ((n += 6) >= 8) {
				n -= 8;
				char c = (char)(bits >> n & 0xff);
				strbuf_append(out, &c, 1);
			}
		}
	} else {
		for (const char *p = q2 + 1; p < q3; p++) {
			char c = *p == '_' ? ' ' : *p;
			if (*p == '=') {
				unsigned v;
				assert_int_equal(sscanf(p + 1, "%2X", &v), 1);
				c = (char)v;
				p += 2;
			}
			strbuf_append(out, &c, 1);
		}
	}
	*end = q3 + 2;
	return true;
}

static char *test_decode_text(const char *s)
{
	struct strbuf out;
	bool after_word = false;

	strbuf_init(&out);
	strbuf_append(&out, "", 0);
	while (*s) {
		const char *end;
		size_t ws = strspn(s, " \t\r\n");
		if (after_word && strncmp(s + ws, "=?", 2) == 0 &&
		    test_decode_word(s + ws, &end, &out)) {
			s = end;
			continue;
		}
		if (test_decode_word(s, &end, &out)) {
			s = end;
			after_word = true;
			continue;
		}
		if (*s != '\r' && *s != '\n')
			strbuf_append(&out, s, 1);
		after_word = false;
		s++;
	}
	return out.data;
}

/* The unfolded value of the first field called name in msg. */
static char *field_value(const char *msg, const char *name)
{
	struct mail_headers h;
	size_t header_len;
	struct strbuf out;

	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	const struct mail_field *f = mail_headers_find(&h, name);
	assert_non_null(f);
	strbuf_init(&out);
	strbuf_append(&out, "", 0);
	mail_field_unfold_value(f, &out);
	mail_headers_free(&h);
	return out.data;
}

/* ---- The tag in plain Subjects ---- */

static void test_basic_tag_rewrites_subject_from_and_sender(void **state)
{
	(void)state;
	assert_sendas("From: mailbox@example.org\r\nSubject: [sendas:shop] hello\r\n\r\nbody\r\n",
		"From: shop@example.org\r\nSubject: hello\r\n\r\nbody\r\n", "shop@example.org");
}

static void test_reply_prefix_keeps_one_space(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: Re: [sendas:shop] hello\r\n", "Subject: Re: hello\r\n");
}

static void test_mixed_case_tag_with_space_after_colon(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [SendAs: shop] hello\r\n", "Subject: hello\r\n");
}

static void test_upper_case_tag_with_space_before_bracket(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [SENDAS:shop ] hello\r\n", "Subject: hello\r\n");
}

static void test_tabs_around_name(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [sendas:\tshop\t] hello\r\n", "Subject: hello\r\n");
}

static void test_name_is_kept_as_written(void **state)
{
	char *msg = message_with("From: mailbox@example.org\r\n",
		"Subject: [sendas:Shop.Team_1-x] hi\r\n");
	char *want = message_with("From: Shop.Team_1-x@example.org\r\n", "Subject: hi\r\n");

	(void)state;
	assert_sendas(msg, want, "Shop.Team_1-x@example.org");
	free(msg);
	free(want);
}

static void test_tag_at_end_takes_space_before(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: hello [sendas:shop]\r\n", "Subject: hello\r\n");
}

static void test_tag_mid_subject(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: order [sendas:shop] 1234\r\n", "Subject: order 1234\r\n");
}

static void test_tag_without_spaces_around(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: a[sendas:shop]b\r\n", "Subject: ab\r\n");
}

static void test_subject_of_only_the_tag_becomes_empty(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [sendas:shop]\r\n", "Subject:\r\n");
}

static void test_subject_field_name_in_any_case(void **state)
{
	(void)state;
	assert_subject_becomes("SUBJECT: [sendas:shop] hi\r\n", "SUBJECT: hi\r\n");
}

static void test_only_first_tag_counts(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [sendas:shop] [sendas:bank] hi\r\n",
		"Subject: [sendas:bank] hi\r\n");
}

/* ---- Not a tag, or not applied: the message is left exactly as it came ---- */

static void test_no_tag_gives_byte_identical_message(void **state)
{
	(void)state;
	assert_unchanged("Received: from x\r\n\tby y; Fri, 13 Feb 2026 10:00:00 +0000\r\n"
		"From:   \"Alice\"   <mailbox@example.org>  \r\nSubject: [send as:shop] hi\r\n"
		"X-Odd :value\r\n\r\n[sendas:shop] in the body\r\n", SENDAS_NONE);
}

static void test_sendas_without_colon_is_not_a_tag(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas shop] hi\r\n", SENDAS_NONE);
}

static void test_name_with_space_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:a b] hi\r\n", SENDAS_INVALID_TAG);
}

static void test_name_with_at_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:x@y] hi\r\n", SENDAS_INVALID_TAG);
}

static void test_empty_name_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:] hi\r\n", SENDAS_INVALID_TAG);
	assert_subject_unchanged("Subject: [sendas:  ] hi\r\n", SENDAS_INVALID_TAG);
}

static void test_unclosed_tag_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:shop\r\n", SENDAS_INVALID_TAG);
}

static void test_name_with_misplaced_dots_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:.shop] hi\r\n", SENDAS_INVALID_TAG);
	assert_subject_unchanged("Subject: [sendas:shop.] hi\r\n", SENDAS_INVALID_TAG);
	assert_subject_unchanged("Subject: [sendas:a..b] hi\r\n", SENDAS_INVALID_TAG);
}

static void test_name_longer_than_a_local_part_leaves_message_unchanged(void **state)
{
	char subject[200];

	(void)state;
	/* RFC 5321 4.5.3.1.1: 64 octets are fine, 65 are not. */
	snprintf(subject, sizeof(subject), "Subject: [sendas:%.64s] hi\r\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	char *msg = message_with("From: mailbox@example.org\r\n", subject);
	struct outcome o = run_sendas(msg);
	assert_int_equal(o.result, SENDAS_APPLIED);
	free(o.message);
	free(msg);
	snprintf(subject, sizeof(subject), "Subject: [sendas:%.65s] hi\r\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_subject_unchanged(subject, SENDAS_INVALID_TAG);
}

static void test_sender_longer_than_a_path_leaves_message_unchanged(void **state)
{
	const char *msg = "From: a@x\r\nSubject: [sendas:shop] hi\r\n\r\n";
	char domain[260];
	char sender[SMTP_PATH_MAX + 1] = "untouched";
	struct mail_headers h;
	size_t header_len;

	(void)state;
	/* "<shop@" + 250 + ">" is 257 octets, one over RFC 5321 4.5.3.1.3. */
	memset(domain, 'd', 250);
	domain[250] = '\0';
	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(sendas_apply(&h, domain, sender), SENDAS_INVALID_TAG);
	assert_string_equal(sender, "untouched");
	mail_headers_free(&h);
	domain[249] = '\0';
	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(sendas_apply(&h, domain, sender), SENDAS_APPLIED);
	assert_int_equal(strlen(sender), 5 + 249);
	mail_headers_free(&h);
}

static void test_first_tag_invalid_means_later_tags_ignored(void **state)
{
	(void)state;
	assert_subject_unchanged("Subject: [sendas:a b] [sendas:shop] hi\r\n", SENDAS_INVALID_TAG);
}

static void test_missing_from_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_unchanged("To: bob@example.net\r\nSubject: [sendas:shop] hi\r\n\r\nbody\r\n",
		SENDAS_NO_FROM);
}

static void test_missing_subject_leaves_message_unchanged(void **state)
{
	(void)state;
	assert_unchanged("From: mailbox@example.org\r\nX-Subject: [sendas:shop]\r\n\r\n"
		"[sendas:x]\r\n", SENDAS_NONE);
}

/* ---- The From field ---- */

static void test_display_name_is_kept(void **state)
{
	(void)state;
	assert_from_becomes("From: Alice <mailbox@example.org>\r\n",
		"From: Alice <shop@example.org>\r\n");
}

static void test_angle_less_from(void **state)
{
	(void)state;
	assert_from_becomes("From: mailbox@example.org\r\n", "From: shop@example.org\r\n");
}

static void test_comment_form_from_keeps_comment(void **state)
{
	(void)state;
	assert_from_becomes("From: mailbox@example.org (Alice)\r\n",
		"From: shop@example.org (Alice)\r\n");
	assert_from_becomes("From: (Alice <a@b>) mailbox@example.org\r\n",
		"From: (Alice <a@b>) shop@example.org\r\n");
}

static void test_quoted_display_name_with_comma(void **state)
{
	(void)state;
	assert_from_becomes("From: \"Doe, Alice\" <mailbox@example.org>\r\n",
		"From: \"Doe, Alice\" <shop@example.org>\r\n");
}

static void test_quoted_display_name_with_escaped_quote_and_angle(void **state)
{
	(void)state;
	assert_from_becomes("From: \"A \\\"<x@y>\\\" B\" <mailbox@example.org>\r\n",
		"From: \"A \\\"<x@y>\\\" B\" <shop@example.org>\r\n");
}

static void test_encoded_display_name_is_kept(void **state)
{
	(void)state;
	assert_from_becomes("From: =?UTF-8?Q?J=C3=BCrgen?= <mailbox@example.org>\r\n",
		"From: =?UTF-8?Q?J=C3=BCrgen?= <shop@example.org>\r\n");
}

static void test_folded_from_keeps_its_folding(void **state)
{
	(void)state;
	assert_from_becomes("From: \"A very long display name\"\r\n <mailbox@example.org>\r\n",
		"From: \"A very long display name\"\r\n <shop@example.org>\r\n");
}

static void test_only_first_mailbox_of_a_list_changes(void **state)
{
	(void)state;
	assert_from_becomes("From: mailbox@example.org, Bob <b@example.org>\r\n",
		"From: shop@example.org, Bob <b@example.org>\r\n");
}

static void test_unreadable_from_becomes_bare_address(void **state)
{
	(void)state;
	assert_from_becomes("From: \"Alice <mailbox@example.org>\r\n",
		"From: shop@example.org\r\n");
	assert_from_becomes("From: Alice <mailbox@example.org\r\n", "From: shop@example.org\r\n");
	assert_from_becomes("From: team: a@example.org;\r\n", "From: shop@example.org\r\n");
	assert_from_becomes("From:\r\n", "From: shop@example.org\r\n");
}

static void test_every_from_field_is_rewritten(void **state)
{
	(void)state;
	assert_sendas("From: A <mailbox@example.org>\r\nSubject: [sendas:shop]\r\n"
		"from: B <mailbox@example.org>\r\n\r\n",
		"From: A <shop@example.org>\r\nSubject:\r\nfrom: B <shop@example.org>\r\n\r\n",
		"shop@example.org");
}

static void test_sender_field_is_left_alone(void **state)
{
	(void)state;
	assert_sendas("Sender: mailbox@example.org\r\nFrom: mailbox@example.org\r\n"
		"Subject: [sendas:shop] x\r\n\r\n",
		"Sender: mailbox@example.org\r\nFrom: shop@example.org\r\nSubject: x\r\n\r\n",
		"shop@example.org");
}

/* ---- Folded Subjects ---- */

static void test_tag_on_continuation_line(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: a long subject\r\n [sendas:shop] continued\r\n",
		"Subject: a long subject\r\n continued\r\n");
}

static void test_tag_alone_on_continuation_line_drops_the_line(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: a long subject\r\n\t[sendas:shop]\r\n",
		"Subject: a long subject\r\n");
}

static void test_tag_ending_first_line_keeps_continuation(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: [sendas:shop]\r\n hello\r\n", "Subject:\r\n hello\r\n");
	char *v = field_value("Subject:\r\n hello\r\n\r\n", "Subject");
	assert_string_equal(v, "hello");
	free(v);
}

/* ---- RFC 2047 encoded-words ---- */

static void test_tag_in_utf8_b_word_leaves_plain_ascii(void **state)
{
	(void)state;
	/* "[sendas:shop] hello" */
	assert_subject_becomes("Subject: =?UTF-8?B?W3NlbmRhczpzaG9wXSBoZWxsbw==?=\r\n",
		"Subject: hello\r\n");
}

static void test_tag_in_latin1_q_word_reencodes_rest(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: =?iso-8859-1?Q?[sendas:shop]_caf=E9?=\r\n",
		"Subject: =?iso-8859-1?Q?caf=E9?=\r\n");
}

static void test_tag_split_across_two_adjacent_words(void **state)
{
	(void)state;
	/* "[senda" + "s:shop] hi": the folding whitespace between them is not text (6.2). */
	assert_subject_becomes("Subject: =?UTF-8?B?W3NlbmRh?=\r\n =?utf-8?B?czpzaG9wXSBoaQ==?=\r\n",
		"Subject: hi\r\n");
}

static void test_word_of_only_the_tag_goes_with_one_space(void **state)
{
	(void)state;
	/* "[sendas:shop]" */
	assert_subject_becomes("Subject: Re: =?UTF-8?B?W3NlbmRhczpzaG9wXQ==?= hello\r\n",
		"Subject: Re: hello\r\n");
}

static void test_non_ascii_remainder_is_reencoded_and_decodes_back(void **state)
{
	static const char text[] = "Grüße aus Köln, wir haben Ihre Bestellung erhalten – "
		"vielen Dank für Ihren Einkauf!";
	struct outcome o;

	(void)state;
	char *msg = message_with("From: mailbox@example.org\r\n",
		"Subject: =?UTF-8?B?W3NlbmRhczpzaG9wXSBHcsO8w59lIGF1cyBLw7Zsbiwgd2lyIGhhYmVu"
		"IElocmUgQmVzdGVsbHVuZyBlcmhhbHRlbiDigJMgdmllbGVuIERhbmsgZsO8ciBJaHJlbiBFaW5r"
		"YXVmIQ==?=\r\n");
	o = run_sendas(msg);
	assert_int_equal(o.result, SENDAS_APPLIED);
	char *subject = field_value(o.message, "Subject");
	/* Long enough for several words; each at most 75 octets (RFC 2047 2), in B like the
	 * original, and each decodes to whole UTF-8 characters (RFC 2047 5). */
	size_t words = 0;
	for (char *w = subject; (w = strstr(w, "=?")); words++) {
		char *end = strstr(w, "?=");
		assert_non_null(end);
		assert_true(end + 2 - w <= 75);
		assert_memory_equal(w, "=?UTF-8?B?", 10);
		char *word = strndup(w, (size_t)(end + 2 - w));
		char *one = test_decode_text(word);
		unsigned char first = (unsigned char)one[0];
		free(word);
		assert_true((first & 0xc0) != 0x80);
		free(one);
		w = end + 2;
	}
	assert_true(words >= 2);
	char *decoded = test_decode_text(subject);
	assert_string_equal(decoded, text);
	free(decoded);
	free(subject);
	free(o.message);
	free(msg);
}

static void test_q_remainder_reencoded_in_q(void **state)
{
	struct outcome o;

	(void)state;
	char *msg = message_with("From: mailbox@example.org\r\n",
		"Subject: =?utf-8?q?Bestellung_[sendas:shop]_=E2=80=93_danke?=\r\n");
	o = run_sendas(msg);
	assert_int_equal(o.result, SENDAS_APPLIED);
	char *subject = field_value(o.message, "Subject");
	assert_memory_equal(subject, "=?utf-8?Q?", 10);
	char *decoded = test_decode_text(subject);
	assert_string_equal(decoded, "Bestellung – danke");
	free(decoded);
	free(subject);
	free(o.message);
	free(msg);
}

static void test_remainder_that_looks_encoded_stays_encoded(void **state)
{
	(void)state;
	/* Written as plain text "=?x?q?y?=" would be read as an encoded-word. */
	assert_subject_becomes("Subject: =?UTF-8?Q?[sendas:shop]_=3D=3Fx=3Fq=3Fy=3F=3D?=\r\n",
		"Subject: =?UTF-8?Q?=3D=3Fx=3Fq=3Fy=3F=3D?=\r\n");
}

static void test_remainder_that_could_join_its_neighbours_stays_encoded(void **state)
{
	(void)state;
	/* Plain "?x" right after "a=" would make "a=?x", the start of an encoded-word. */
	assert_subject_becomes("Subject: a==?UTF-8?Q?[sendas:shop]_=3Fx?=\r\n",
		"Subject: a==?UTF-8?Q?=3Fx?=\r\n");
}

static void test_encoded_line_end_never_written_raw(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: =?UTF-8?Q?[sendas:shop]_a=0D=0AFrom:_x?=\r\n",
		"Subject: =?UTF-8?Q?a=0D=0AFrom=3A_x?=\r\n");
}

static void test_plain_tag_after_encoded_word(void **state)
{
	(void)state;
	assert_subject_becomes("Subject: Re: =?UTF-8?Q?caf=C3=A9?= [sendas:shop]\r\n",
		"Subject: Re: =?UTF-8?Q?caf=C3=A9?=\r\n");
}

static void test_words_outside_the_tag_are_kept(void **state)
{
	(void)state;
	/* The first word is in another charset: it is not part of the tag's run. */
	assert_subject_becomes("Subject: =?iso-8859-1?Q?caf=E9?= =?UTF-8?Q?[sendas:shop]_x?=\r\n",
		"Subject: =?iso-8859-1?Q?caf=E9?= x\r\n");
}

static void test_tag_in_unsafe_charset_is_not_looked_for(void **state)
{
	(void)state;
	/* ISO-2022-JP octets that spell "[sendas:shop] hello" in ASCII could be kanji. */
	assert_subject_unchanged("Subject: =?ISO-2022-JP?B?W3NlbmRhczpzaG9wXSBoZWxsbw==?=\r\n",
		SENDAS_NONE);
}

static void test_malformed_encoded_word_is_plain_text(void **state)
{
	(void)state;
	/* Not valid base64: the octets are plain text, and hold no tag. */
	assert_subject_unchanged("Subject: =?UTF-8?B?W3Nl!!!?=\r\n", SENDAS_NONE);
}

/* ---- Date and Message-ID ---- */

static char *ensure(const char *msg, unsigned *added)
{
	struct mail_headers h;
	size_t header_len;
	struct strbuf out;

	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	/* 2026-02-13T10:00:00Z */
	*added = mail_headers_ensure_date_and_message_id(&h, 1770976800, "q1a2b3.c4", DOMAIN);
	message_rebuild(&h, msg, header_len, &out);
	mail_headers_free(&h);
	return out.data;
}

static void test_date_and_message_id_added_when_missing(void **state)
{
	unsigned added;

	(void)state;
	char *out = ensure("From: a@example.org\r\n\r\nbody\r\n", &added);
	assert_int_equal(added, MAIL_ADDED_DATE | MAIL_ADDED_MESSAGE_ID);
	assert_string_equal(out, "From: a@example.org\r\nDate: Fri, 13 Feb 2026 10:00:00 +0000\r\n"
		"Message-ID: <q1a2b3.c4@example.org>\r\n\r\nbody\r\n");
	free(out);
}

static void test_present_date_and_message_id_are_kept(void **state)
{
	static const char msg[] = "DATE: Mon, 1 Jan 2024 00:00:00 +0100\r\n"
		"message-id: <x@y>\r\n\r\nbody\r\n";
	unsigned added;

	(void)state;
	char *out = ensure(msg, &added);
	assert_int_equal(added, 0);
	assert_string_equal(out, msg);
	free(out);
}

static void test_only_the_missing_one_is_added(void **state)
{
	unsigned added;

	(void)state;
	char *out = ensure("Date: Mon, 1 Jan 2024 00:00:00 +0100\r\n\r\n", &added);
	assert_int_equal(added, MAIL_ADDED_MESSAGE_ID);
	assert_string_equal(out, "Date: Mon, 1 Jan 2024 00:00:00 +0100\r\n"
		"Message-ID: <q1a2b3.c4@example.org>\r\n\r\n");
	free(out);
}

static void test_fields_added_after_a_last_line_without_line_end(void **state)
{
	unsigned added;

	(void)state;
	char *out = ensure("Subject: x", &added);
	assert_string_equal(out, "Subject: x\r\nDate: Fri, 13 Feb 2026 10:00:00 +0000\r\n"
		"Message-ID: <q1a2b3.c4@example.org>\r\n");
	free(out);
}

/* ---- The header section parser ---- */

static void test_header_section_too_big_is_refused(void **state)
{
	size_t len = MAIL_HEADER_SECTION_MAX + 100;
	char *msg = malloc(len);
	struct mail_headers h = {.count = 12345};
	size_t header_len = 777;

	(void)state;
	assert_non_null(msg);
	memset(msg, 'a', len);
	memcpy(msg, "X-Big: ", 7);
	assert_int_equal(mail_headers_parse(msg, len, &h, &header_len), MAIL_HEADERS_TOO_BIG);
	/* Outputs untouched on failure. */
	assert_int_equal(h.count, 12345);
	assert_int_equal(header_len, 777);
	/* Exactly the limit, blank line included, is fine. */
	memcpy(msg + MAIL_HEADER_SECTION_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(mail_headers_parse(msg, len, &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(header_len, MAIL_HEADER_SECTION_MAX);
	mail_headers_free(&h);
	free(msg);
}

static void test_too_many_fields_is_refused(void **state)
{
	struct strbuf msg;
	struct mail_headers h;
	size_t header_len;

	(void)state;
	strbuf_init(&msg);
	for (int i = 0; i < MAIL_HEADER_FIELDS_MAX; i++)
		strbuf_appendf(&msg, "X-%d: v\r\n", i);
	assert_int_equal(mail_headers_parse(msg.data, msg.len, &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(h.count, MAIL_HEADER_FIELDS_MAX);
	mail_headers_free(&h);
	strbuf_append_str(&msg, "X-One-Too-Many: v\r\n\r\n");
	assert_int_equal(mail_headers_parse(msg.data, msg.len, &h, &header_len),
		MAIL_HEADERS_TOO_BIG);
	strbuf_free(&msg);
}

static void test_bare_lf_message_gets_send_as_and_lf_fields(void **state)
{
	struct mail_headers h;
	size_t header_len;
	char sender[SMTP_PATH_MAX + 1];
	struct strbuf out;
	const char *msg = "From: Alice <mailbox@example.org>\nSubject: [sendas:shop] hi\n\nbody\n";

	(void)state;
	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(header_len, strlen(msg) - 5);
	assert_int_equal(sendas_apply(&h, DOMAIN, sender), SENDAS_APPLIED);
	mail_headers_ensure_date_and_message_id(&h, 0, "t", DOMAIN);
	message_rebuild(&h, msg, header_len, &out);
	assert_string_equal(out.data, "From: Alice <shop@example.org>\nSubject: hi\n"
		"Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <t@example.org>\n\nbody\n");
	strbuf_free(&out);
	mail_headers_free(&h);
}

static void test_untouched_fields_are_byte_exact(void **state)
{
	(void)state;
	assert_sendas("Received: from a\r\n\tby b\r\nX-8bit: caf\xc3\xa9 \t \r\n"
		"From : M <mailbox@example.org>\r\nSubject:[sendas:shop]x\r\nNot a field line\r\n"
		"X-Empty:\r\nX-Cr: a\rb\r\n\r\nbody",
		"Received: from a\r\n\tby b\r\nX-8bit: caf\xc3\xa9 \t \r\n"
		"From : M <shop@example.org>\r\nSubject:x\r\nNot a field line\r\n"
		"X-Empty:\r\nX-Cr: a\rb\r\n\r\nbody",
		"shop@example.org");
}

/* Parse then serialize gives back exactly the header section, with header_len at the body. */
static void assert_round_trip(const char *msg, size_t want_header_len, size_t want_count)
{
	struct mail_headers h;
	size_t header_len;
	struct strbuf out;

	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	assert_int_equal(header_len, want_header_len);
	assert_int_equal(h.count, want_count);
	strbuf_init(&out);
	strbuf_append(&out, "", 0);
	mail_headers_serialize(&h, &out);
	assert_int_equal(out.len, header_len);
	assert_memory_equal(out.data, msg, header_len);
	strbuf_free(&out);
	mail_headers_free(&h);
}

static void test_headers_only_message_without_blank_line(void **state)
{
	(void)state;
	assert_round_trip("From: a@b\r\nSubject: x\r\n", 23, 2);
	assert_round_trip("From: a@b\r\nSubject: x", 21, 2);
}

static void test_empty_and_body_only_messages(void **state)
{
	(void)state;
	assert_round_trip("", 0, 0);
	assert_round_trip("\r\nbody\r\n", 2, 0);
	assert_round_trip("\nbody\n", 1, 0);
	assert_round_trip("From: a@b\r\n\r\n", 13, 1);
}

static void test_lines_that_are_not_fields_are_kept(void **state)
{
	struct mail_headers h;
	size_t header_len;
	const char *msg = " leading continuation\r\nFrom a@b Fri\r\nno colon\r\nbad name: x\r\n"
		"Subject: s\r\n\r\n";

	(void)state;
	assert_round_trip(msg, strlen(msg), 5);
	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(h.fields[i].name_len, 0);
	assert_int_equal(mail_headers_index(&h, "Subject", 0), 4);
	assert_int_equal(mail_headers_index(&h, "From", 0), MAIL_HEADERS_NOT_FOUND);
	mail_headers_free(&h);
}

static void test_bare_cr_does_not_end_a_line(void **state)
{
	(void)state;
	assert_round_trip("A: x\r\rB: y\r\n\r\n", 14, 1);
	assert_round_trip("A: x\r\n\r\r\n\r\n", 11, 2);
}

static void test_unfolded_value(void **state)
{
	(void)state;
	char *v = field_value("Subject:  a\r\n b\r\n\tc  \r\n\r\n", "subject");
	assert_string_equal(v, "a b\tc");
	free(v);
	v = field_value("Subject  : x\n y\n\n", "Subject");
	assert_string_equal(v, "x y");
	free(v);
}

static void test_replace_remove_append(void **state)
{
	struct mail_headers h;
	size_t header_len;
	struct strbuf out;
	const char *msg = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";

	(void)state;
	assert_int_equal(mail_headers_parse(msg, strlen(msg), &h, &header_len), MAIL_HEADERS_OK);
	mail_headers_replace(&h, 1, "B: two\r\n\tlines", 14);
	mail_headers_remove(&h, 0);
	mail_headers_append(&h, "D", "4");
	strbuf_init(&out);
	mail_headers_serialize(&h, &out);
	/* A replacement without its line end gets one: a field follows it. */
	assert_string_equal(out.data, "B: two\r\n\tlines\r\nC: 3\r\nD: 4\r\n\r\n");
	assert_int_equal(h.fields[0].name_len, 1);
	assert_int_equal(h.fields[0].value_offset, 2);
	strbuf_free(&out);
	mail_headers_free(&h);
}

/* ---- Message-ID at receipt: the streaming scan, driven as smtp/inbound.c drives it ---- */

#define ADDED_ID "Message-ID: <Q1.mailpopbox@mx.example.org>\r\n"

/* Feeds msg in chunks of chunk octets through the scan, writing what it says, as the glue
 * does; returns the stored bytes (caller frees). */
static char *store_with_message_id(const char *msg, size_t chunk)
{
	struct mail_message_id_scan scan;
	struct strbuf out, field;
	size_t len = strlen(msg);
	bool held = false, line_end_first;

	strbuf_init(&out);
	strbuf_init(&field);
	mail_message_id_field(&field, "Q1.mailpopbox", "mx.example.org");
	assert_string_equal(field.data, ADDED_ID);
	mail_message_id_scan_init(&scan);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		for (size_t i = 0; i < n; i++) {
			char c = msg[off + i];
			if (!mail_message_id_scan_active(&scan)) {
				strbuf_append(&out, &c, 1);
				continue;
			}
			switch (mail_message_id_scan_feed(&scan, c)) {
			case MAIL_MESSAGE_ID_HOLD:
				held = true;
				continue;
			case MAIL_MESSAGE_ID_INSERT:
				strbuf_append(&out, field.data, field.len);
				break;
			default:
				break;
			}
			if (held)
				strbuf_append(&out, "\r", 1);
			held = false;
			strbuf_append(&out, &c, 1);
		}
	}
	if (mail_message_id_scan_missing_at_end(&scan, &line_end_first)) {
		if (line_end_first)
			strbuf_append(&out, "\r\n", 2);
		strbuf_append(&out, field.data, field.len);
	}
	if (held)
		strbuf_append(&out, "\r", 1);
	strbuf_free(&field);
	char *result = strdup(out.data ? out.data : "");
	strbuf_free(&out);
	return result;
}

/* The same outcome whether the message comes in one piece or octet by octet. */
static void assert_stored(const char *msg, const char *want)
{
	const size_t chunks[] = {1, 2, 3, 7, 4096};

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		char *got = store_with_message_id(msg, chunks[i]);
		assert_string_equal(got, want);
		free(got);
	}
}

static void test_message_without_message_id_gets_one_where_headers_end(void **state)
{
	(void)state;
	assert_stored("From: a@example.net\r\nSubject: hi\r\n\r\nbody\r\n",
		"From: a@example.net\r\nSubject: hi\r\n" ADDED_ID "\r\nbody\r\n");
}

static void test_message_with_message_id_is_unchanged(void **state)
{
	const char *msgs[] = {
		"From: a@example.net\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n",
		"message-id: <x@y>\r\n\r\nbody\r\n",
		"MESSAGE-ID : <x@y>\r\n\r\nbody\r\n", /* RFC 5322 4.5.8: WSP before the colon */
		"Message-ID:\r\n <folded@y>\r\n\r\n",
		"Subject: x\r\nMessage-ID: <x@y>\r\n", /* headers only */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		assert_stored(msgs[i], msgs[i]);
}

static void test_message_id_in_body_or_folded_value_does_not_count(void **state)
{
	(void)state;
	assert_stored("Subject: a\r\n\r\nMessage-ID: <in-body@y>\r\n",
		"Subject: a\r\n" ADDED_ID "\r\nMessage-ID: <in-body@y>\r\n");
	assert_stored("Subject: a\r\n Message-ID: <folded@y>\r\n\r\nb\r\n",
		"Subject: a\r\n Message-ID: <folded@y>\r\n" ADDED_ID "\r\nb\r\n");
	assert_stored("X-Message-ID: <x@y>\r\nMessage-IDs: <x@y>\r\nMessage-I: 1\r\n\r\n",
		"X-Message-ID: <x@y>\r\nMessage-IDs: <x@y>\r\nMessage-I: 1\r\n" ADDED_ID "\r\n");
	assert_stored("Message-ID <no colon>\r\n\r\n", "Message-ID <no colon>\r\n" ADDED_ID "\r\n");
}

static void test_message_of_headers_only_or_empty_gets_one_at_the_end(void **state)
{
	(void)state;
	assert_stored("Subject: a\r\n", "Subject: a\r\n" ADDED_ID);
	assert_stored("", ADDED_ID);
	assert_stored("Subject: a", "Subject: a\r\n" ADDED_ID);
	assert_stored("\r\nbody\r\n", ADDED_ID "\r\nbody\r\n");
}

static void test_bare_lf_and_bare_cr_lines(void **state)
{
	(void)state;
	assert_stored("Subject: a\n\nbody\n", "Subject: a\n" ADDED_ID "\nbody\n");
	/* A line starting with a bare CR is not the blank line, nor a field. */
	assert_stored("\rX\r\nMessage-ID: <x@y>\r\n\r\n", "\rX\r\nMessage-ID: <x@y>\r\n\r\n");
	assert_stored("\r\r\n\r\n", "\r\r\n" ADDED_ID "\r\n");
}

static void test_message_id_scan_is_bounded(void **state)
{
	struct strbuf msg, want;

	(void)state;
	/* A header section past the limit: the field goes before the next field after it. */
	strbuf_init(&msg);
	while (msg.len <= MAIL_HEADER_SECTION_MAX)
		strbuf_append(&msg, "X-Filler: 0123456789012345678901234567890123456789\r\n", 52);
	strbuf_init(&want);
	strbuf_append(&want, msg.data, msg.len);
	strbuf_append(&msg, "Message-ID: <late@y>\r\n\r\n", 24);
	strbuf_append(&want, ADDED_ID "Message-ID: <late@y>\r\n\r\n", sizeof(ADDED_ID) - 1 + 24);
	char *got = store_with_message_id(msg.data, 4096);
	assert_string_equal(got, want.data);
	free(got);
	strbuf_free(&msg);
	strbuf_free(&want);

	/* One line longer than twice the limit: the scan gives up, nothing is added. */
	strbuf_init(&msg);
	strbuf_append(&msg, "Subject: ", 9);
	while (msg.len <= 2 * (size_t)MAIL_HEADER_SECTION_MAX + 10)
		strbuf_append(&msg, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 50);
	strbuf_append(&msg, "\r\n\r\nbody\r\n", 10);
	got = store_with_message_id(msg.data, 4096);
	assert_string_equal(got, msg.data);
	free(got);
	strbuf_free(&msg);
}

static void test_message_id_of_an_address_literal_hostname_stays_well_formed(void **state)
{
	struct strbuf out;

	(void)state;
	strbuf_init(&out);
	mail_message_id_field(&out, "Q1.mailpopbox", "[192.0.2.1]");
	assert_string_equal(out.data, "Message-ID: <Q1.mailpopbox@mailpopbox.invalid>\r\n");
	strbuf_free(&out);
}

/* Random messages built from header-ish pieces: the stored bytes are the input with at most
 * the one field inserted, and the header parser then finds exactly one Message-ID. */
static void test_message_id_scan_on_random_messages(void **state)
{
	static const char *const pieces[] = {
		"Subject: x\r\n", "Message-ID: <a@b>\r\n", " Message-ID: <c@d>\r\n", "\r\n",
		"message-id :<e@f>\r\n", "X: Message-ID:\r\n", "\r", "\n", "Message-I", "D: <g@h>\r\n",
		"Received: from a\r\n\tby b\r\n", ":\r\n", "\r\r\n",
	};
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		struct strbuf msg;
		strbuf_init(&msg);
		strbuf_append(&msg, "", 0);
		int n = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8;
		for (int i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			const char *piece = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
			strbuf_append(&msg, piece, strlen(piece));
		}
		char *got = store_with_message_id(msg.data, 1 + round % 5);
		char *at = strstr(got, ADDED_ID);
		if (at) {
			/* The input, with the field cut out again. */
			struct strbuf back;
			strbuf_init(&back);
			strbuf_append(&back, got, (size_t)(at - got));
			strbuf_append(&back, at + strlen(ADDED_ID), strlen(at + strlen(ADDED_ID)));
			strbuf_append(&back, "", 0);
			/* A message ending inside a line got a line end before the field. */
			if (strcmp(back.data, msg.data) != 0) {
				assert_int_equal(back.len, msg.len + 2);
				assert_memory_equal(back.data, msg.data, msg.len);
			}
			strbuf_free(&back);
		} else {
			assert_string_equal(got, msg.data);
		}
		struct mail_headers h;
		size_t header_len;
		assert_int_equal(mail_headers_parse(got, strlen(got), &h, &header_len),
			MAIL_HEADERS_OK);
		size_t first = mail_headers_index(&h, "Message-ID", 0);
		if (at || first != MAIL_HEADERS_NOT_FOUND)
			assert_true(first != MAIL_HEADERS_NOT_FOUND);
		if (at)
			assert_int_equal(mail_headers_index(&h, "Message-ID", first + 1),
				MAIL_HEADERS_NOT_FOUND);
		else
			assert_true(first != MAIL_HEADERS_NOT_FOUND);
		mail_headers_free(&h);
		free(got);
		strbuf_free(&msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_without_message_id_gets_one_where_headers_end),
		cmocka_unit_test(test_message_with_message_id_is_unchanged),
		cmocka_unit_test(test_message_id_in_body_or_folded_value_does_not_count),
		cmocka_unit_test(test_message_of_headers_only_or_empty_gets_one_at_the_end),
		cmocka_unit_test(test_bare_lf_and_bare_cr_lines),
		cmocka_unit_test(test_message_id_scan_is_bounded),
		cmocka_unit_test(test_message_id_of_an_address_literal_hostname_stays_well_formed),
		cmocka_unit_test(test_message_id_scan_on_random_messages),
		cmocka_unit_test(test_basic_tag_rewrites_subject_from_and_sender),
		cmocka_unit_test(test_reply_prefix_keeps_one_space),
		cmocka_unit_test(test_mixed_case_tag_with_space_after_colon),
		cmocka_unit_test(test_upper_case_tag_with_space_before_bracket),
		cmocka_unit_test(test_tabs_around_name),
		cmocka_unit_test(test_name_is_kept_as_written),
		cmocka_unit_test(test_tag_at_end_takes_space_before),
		cmocka_unit_test(test_tag_mid_subject),
		cmocka_unit_test(test_tag_without_spaces_around),
		cmocka_unit_test(test_subject_of_only_the_tag_becomes_empty),
		cmocka_unit_test(test_subject_field_name_in_any_case),
		cmocka_unit_test(test_only_first_tag_counts),
		cmocka_unit_test(test_no_tag_gives_byte_identical_message),
		cmocka_unit_test(test_sendas_without_colon_is_not_a_tag),
		cmocka_unit_test(test_name_with_space_leaves_message_unchanged),
		cmocka_unit_test(test_name_with_at_leaves_message_unchanged),
		cmocka_unit_test(test_empty_name_leaves_message_unchanged),
		cmocka_unit_test(test_unclosed_tag_leaves_message_unchanged),
		cmocka_unit_test(test_name_with_misplaced_dots_leaves_message_unchanged),
		cmocka_unit_test(test_name_longer_than_a_local_part_leaves_message_unchanged),
		cmocka_unit_test(test_sender_longer_than_a_path_leaves_message_unchanged),
		cmocka_unit_test(test_first_tag_invalid_means_later_tags_ignored),
		cmocka_unit_test(test_missing_from_leaves_message_unchanged),
		cmocka_unit_test(test_missing_subject_leaves_message_unchanged),
		cmocka_unit_test(test_display_name_is_kept),
		cmocka_unit_test(test_angle_less_from),
		cmocka_unit_test(test_comment_form_from_keeps_comment),
		cmocka_unit_test(test_quoted_display_name_with_comma),
		cmocka_unit_test(test_quoted_display_name_with_escaped_quote_and_angle),
		cmocka_unit_test(test_encoded_display_name_is_kept),
		cmocka_unit_test(test_folded_from_keeps_its_folding),
		cmocka_unit_test(test_only_first_mailbox_of_a_list_changes),
		cmocka_unit_test(test_unreadable_from_becomes_bare_address),
		cmocka_unit_test(test_every_from_field_is_rewritten),
		cmocka_unit_test(test_sender_field_is_left_alone),
		cmocka_unit_test(test_tag_on_continuation_line),
		cmocka_unit_test(test_tag_alone_on_continuation_line_drops_the_line),
		cmocka_unit_test(test_tag_ending_first_line_keeps_continuation),
		cmocka_unit_test(test_tag_in_utf8_b_word_leaves_plain_ascii),
		cmocka_unit_test(test_tag_in_latin1_q_word_reencodes_rest),
		cmocka_unit_test(test_tag_split_across_two_adjacent_words),
		cmocka_unit_test(test_word_of_only_the_tag_goes_with_one_space),
		cmocka_unit_test(test_non_ascii_remainder_is_reencoded_and_decodes_back),
		cmocka_unit_test(test_q_remainder_reencoded_in_q),
		cmocka_unit_test(test_remainder_that_looks_encoded_stays_encoded),
		cmocka_unit_test(test_remainder_that_could_join_its_neighbours_stays_encoded),
		cmocka_unit_test(test_encoded_line_end_never_written_raw),
		cmocka_unit_test(test_plain_tag_after_encoded_word),
		cmocka_unit_test(test_words_outside_the_tag_are_kept),
		cmocka_unit_test(test_tag_in_unsafe_charset_is_not_looked_for),
		cmocka_unit_test(test_malformed_encoded_word_is_plain_text),
		cmocka_unit_test(test_date_and_message_id_added_when_missing),
		cmocka_unit_test(test_present_date_and_message_id_are_kept),
		cmocka_unit_test(test_only_the_missing_one_is_added),
		cmocka_unit_test(test_fields_added_after_a_last_line_without_line_end),
		cmocka_unit_test(test_header_section_too_big_is_refused),
		cmocka_unit_test(test_too_many_fields_is_refused),
		cmocka_unit_test(test_bare_lf_message_gets_send_as_and_lf_fields),
		cmocka_unit_test(test_untouched_fields_are_byte_exact),
		cmocka_unit_test(test_headers_only_message_without_blank_line),
		cmocka_unit_test(test_empty_and_body_only_messages),
		cmocka_unit_test(test_lines_that_are_not_fields_are_kept),
		cmocka_unit_test(test_bare_cr_does_not_end_a_line),
		cmocka_unit_test(test_unfolded_value),
		cmocka_unit_test(test_replace_remove_append),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
