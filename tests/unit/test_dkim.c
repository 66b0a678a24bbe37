/* test_dkim.c: DKIM key generation and signing. Every signature is checked by libopendkim's
 * verifier with the generated key record (read from a file instead of DNS), and once by
 * python3-dkim, an independent implementation, through dkim_verify.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

#include "mail/dkim.h"
#include "mail/dkim_keygen.h"
#include "strbuf.h"

#define DOMAIN "example.org"
#define SELECTOR "mail2025"
#define RECORD_NAME SELECTOR "._domainkey." DOMAIN "."

/* Made once by the group setup: a scratch directory, a key from dkim_keygen, the record it
 * printed, and the key file libopendkim's verifier reads instead of DNS. */
static char scratch[64];
static char key_path[128];
static char query_path[128];
static char keygen_output[4096];
static char key_record[1024];
static struct dkim_signer *signer;

static const char sample_header[] =
	"From: Owner <owner@example.org>\r\n"
	"To: Friend <friend@example.net>\r\n"
	"Subject: Lunch on Friday?\r\n"
	"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
	"Message-ID: <20250602100000.1@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"X-Mailer: test\r\n"
	"\r\n";
static const char sample_body[] =
	"Hi,\r\n"
	"\r\n"
	"shall we meet at noon?\r\n";

static char *scratch_path(char *buf, size_t bufsz, const char *name)
{
	snprintf(buf, bufsz, "%s/%s", scratch, name);
	return buf;
}

/* Splits a keygen zone-file line into its owner name and the joined character-strings,
 * checking each string's length on the way. */
static void parse_record_line(const char *output, char *name, size_t namesz, char *value,
	size_t valuesz)
{
	const char *p = strchr(output, ' ');
	size_t vlen = 0;

	assert_non_null(p);
	assert_true((size_t)(p - output) < namesz);
	memcpy(name, output, (size_t)(p - output));
	name[p - output] = '\0';
	assert_memory_equal(p, " IN TXT ", 8);
	p += 8;
	while (*p == '"') {
		const char *end = strchr(p + 1, '"');
		size_t n;

		assert_non_null(end);
		n = (size_t)(end - p - 1);
		/* RFC 1035 3.3.14: one character-string holds at most 255 octets. */
		assert_true(n <= 255);
		assert_true(vlen + n < valuesz);
		memcpy(value + vlen, p + 1, n);
		vlen += n;
		p = end + 1;
		if (*p == ' ')
			p++;
	}
	assert_int_equal(*p, '\n');
	value[vlen] = '\0';
}

/* Runs dkim_keygen with its output captured in buf. */
static int keygen_capture(const char *domain, const char *selector, const char *path, char *buf,
	size_t bufsz, char *err, size_t errsz)
{
	FILE *out = tmpfile();
	size_t n;
	int ret;

	assert_non_null(out);
	ret = dkim_keygen(domain, selector, path, out, err, errsz);
	rewind(out);
	n = fread(buf, 1, bufsz - 1, out);
	buf[n] = '\0';
	fclose(out);
	return ret;
}

static int group_setup(void **state)
{
	char err[512] = "";
	char name[256];
	FILE *f;

	(void)state;
	snprintf(scratch, sizeof(scratch), "/tmp/test_dkim.XXXXXX");
	if (!mkdtemp(scratch))
		return -1;
	scratch_path(key_path, sizeof(key_path), "dkim.pem");
	if (keygen_capture(DOMAIN, SELECTOR, key_path, keygen_output, sizeof(keygen_output), err,
		sizeof(err)) != 0) {
		fprintf(stderr, "dkim_keygen: %s\n", err);
		return -1;
	}
	parse_record_line(keygen_output, name, sizeof(name), key_record, sizeof(key_record));
	/* libopendkim's DKIM_QUERY_FILE: lines "SELECTOR._domainkey.DOMAIN <record>". */
	scratch_path(query_path, sizeof(query_path), "keys.txt");
	f = fopen(query_path, "w");
	if (!f)
		return -1;
	fprintf(f, "%s._domainkey.%s %s", SELECTOR, DOMAIN, key_record);
	fclose(f);
	signer = dkim_signer_new(DOMAIN, SELECTOR, key_path, err, sizeof(err));
	if (!signer) {
		fprintf(stderr, "dkim_signer_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	dkim_signer_free(signer);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	return system(cmd) == 0 ? 0 : -1;
}

/* A file holding junk followed by the body, positioned at the body: the signer must read from
 * the current offset, as the queue hands it a spool file positioned after the header. */
static int body_file(const char *body, size_t len)
{
	static const char junk[] = "JUNK-BEFORE-BODY";
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = dup(fileno(f));
	fclose(f);
	assert_true(write(fd, junk, strlen(junk)) == (ssize_t)strlen(junk));
	assert_true(len == 0 || write(fd, body, len) == (ssize_t)len);
	assert_true(lseek(fd, (off_t)strlen(junk), SEEK_SET) == (off_t)strlen(junk));
	return fd;
}

static int sign(const char *header, const char *body, size_t body_len, struct strbuf *field,
	char *err, size_t errsz)
{
	int fd = body_file(body, body_len);
	int ret = dkim_signer_sign(signer, header, strlen(header), fd, field, err, errsz);

	close(fd);
	return ret;
}

/* The signed message as it goes on the wire: DKIM-Signature, then the message unchanged. */
static void sign_message(const char *header, const char *body, size_t body_len,
	struct strbuf *message)
{
	char err[512] = "";

	strbuf_init(message);
	if (sign(header, body, body_len, message, err, sizeof(err)) != 0)
		fail_msg("signing failed: %s", err);
	strbuf_append_str(message, header);
	strbuf_append(message, body, body_len);
}

/* libopendkim's verifier with the key from query_path; DKIM_STAT_OK only when the one signature
 * passed both the header and the body hash check. */
static DKIM_STAT verify_with_libopendkim(const char *message, size_t len)
{
	dkim_query_t method = DKIM_QUERY_FILE;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_SIGINFO *sig;
	DKIM_STAT status;
	DKIM *dkim;

	assert_non_null(lib);
	assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method,
		sizeof(method)), DKIM_STAT_OK);
	assert_int_equal(dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, query_path,
		strlen(query_path)), DKIM_STAT_OK);
	dkim = dkim_verify(lib, (const unsigned char *)"test", NULL, &status);
	assert_non_null(dkim);
	status = dkim_chunk(dkim, (unsigned char *)message, len);
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, NULL, 0);
	if (status == DKIM_STAT_OK)
		status = dkim_eom(dkim, NULL);
	if (status == DKIM_STAT_OK) {
		sig = dkim_getsignature(dkim);
		if (!sig || !DKIM_SIG_CHECK(sig))
			status = DKIM_STAT_BADSIG;
	}
	dkim_free(dkim);
	dkim_close(lib);
	return status;
}

static void assert_verifies(const struct strbuf *message)
{
	DKIM_STAT status = verify_with_libopendkim(message->data, message->len);

	if (status != DKIM_STAT_OK)
		fail_msg("verification failed: %s\n%s", dkim_getresultstr(status), message->data);
}

static void assert_does_not_verify(const struct strbuf *message)
{
	assert_int_not_equal(verify_with_libopendkim(message->data, message->len), DKIM_STAT_OK);
}

/* Replaces the first occurrence of from in message by to. */
static void replace_in(struct strbuf *message, const char *from, const char *to)
{
	char *at = strstr(message->data, from);
	struct strbuf out;

	assert_non_null(at);
	strbuf_init(&out);
	strbuf_append(&out, message->data, (size_t)(at - message->data));
	strbuf_append_str(&out, to);
	strbuf_append_str(&out, at + strlen(from));
	strbuf_free(message);
	*message = out;
}

/* Inserts text right after the DKIM-Signature field, i.e. above the signed header fields. */
static void insert_after_signature(struct strbuf *message, const char *text)
{
	char *from = strstr(message->data, "\r\nFrom:");
	struct strbuf out;

	assert_non_null(from);
	strbuf_init(&out);
	strbuf_append(&out, message->data, (size_t)(from - message->data) + 2);
	strbuf_append_str(&out, text);
	strbuf_append_str(&out, from + 2);
	strbuf_free(message);
	*message = out;
}

/* The value of tag name in a DKIM-Signature field, unfolded and with all whitespace removed
 * (RFC 6376 3.2: whitespace around tags and inside h= and b= is ignored). */
static void signature_tag(const char *field, const char *name, char *out, size_t outsz)
{
	const char *p = strchr(field, ':');
	size_t o = 0;

	assert_non_null(p);
	for (p++; *p;) {
		size_t n = 0;

		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		while (p[n] && p[n] != '=' && p[n] != ';')
			n++;
		if (n == strlen(name) && memcmp(p, name, n) == 0 && p[n] == '=') {
			for (p += n + 1; *p && *p != ';'; p++) {
				if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
					continue;
				assert_true(o + 1 < outsz);
				out[o++] = *p;
			}
			out[o] = '\0';
			return;
		}
		p = strchr(p, ';');
		if (!p)
			break;
		p++;
	}
	fail_msg("no %s= tag in %s", name, field);
}

/* The h= tag, lowercased, as ":name:name:...:". */
static void signed_header_list(const char *field, char *out, size_t outsz)
{
	char h[1024];

	signature_tag(field, "h", h, sizeof(h));
	size_t len = strlen(h);

	assert_true(len + 3 <= outsz);
	out[0] = ':';
	for (size_t i = 0; i < len; i++)
		out[i + 1] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] - 'A' + 'a' : h[i]);
	out[len + 1] = ':';
	out[len + 2] = '\0';
}

static int count_in_list(const char *list, const char *name)
{
	char needle[64];
	int n = 0;

	snprintf(needle, sizeof(needle), ":%s:", name);
	for (const char *p = list; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* ---- dkim-keygen ---- */

static void test_keygen_writes_key_with_mode_0600(void **state)
{
	struct stat st;

	(void)state;
	assert_int_equal(stat(key_path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_keygen_key_is_2048_bit_rsa_pkcs8_pem(void **state)
{
	FILE *f = fopen(key_path, "r");
	char first[64] = "";
	EVP_PKEY *pkey;

	(void)state;
	assert_non_null(f);
	assert_non_null(fgets(first, sizeof(first), f));
	assert_string_equal(first, "-----BEGIN PRIVATE KEY-----\n");
	rewind(f);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pkey);
	assert_true(EVP_PKEY_is_a(pkey, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
	EVP_PKEY_free(pkey);
}

static void test_keygen_refuses_to_overwrite_existing_file(void **state)
{
	char path[160], err[512] = "", out[4096];
	struct stat st;
	FILE *f;

	(void)state;
	scratch_path(path, sizeof(path), "existing.pem");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep me\n", f);
	fclose(f);
	assert_int_equal(keygen_capture(DOMAIN, SELECTOR, path, out, sizeof(out), err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	assert_non_null(strstr(err, path));
	assert_string_equal(out, "");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 8);
	/* Nor the key it generated at startup. */
	assert_int_equal(keygen_capture(DOMAIN, SELECTOR, key_path, out, sizeof(out), err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
}

static void test_keygen_refuses_dangling_symlink(void **state)
{
	char path[160], target[160], err[512] = "", out[256];

	(void)state;
	scratch_path(path, sizeof(path), "link.pem");
	scratch_path(target, sizeof(target), "nowhere.pem");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(keygen_capture(DOMAIN, SELECTOR, path, out, sizeof(out), err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(access(target, F_OK), -1);
}

static void test_keygen_into_missing_directory_fails_cleanly(void **state)
{
	char path[160], err[512] = "", out[256];

	(void)state;
	scratch_path(path, sizeof(path), "no/such/dir/key.pem");
	assert_int_equal(keygen_capture(DOMAIN, SELECTOR, path, out, sizeof(out), err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create"));
	assert_non_null(strstr(err, "No such file or directory"));
}

static void test_keygen_rejects_bad_domain_or_selector_without_writing(void **state)
{
	static const char *const bad[][2] = {
		{"exa mple.org", "s1"}, {"example.org.", "s1"}, {"example..org", "s1"},
		{"-example.org", "s1"}, {"example.org", "a/b"}, {"example.org", ""},
		{"example.org", "s\"1"}, {"", "s1"},
	};
	char path[160], err[512], out[256];

	(void)state;
	scratch_path(path, sizeof(path), "bad-names.pem");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(keygen_capture(bad[i][0], bad[i][1], path, out, sizeof(out), err,
			sizeof(err)), -1);
		assert_true(strstr(err, "domain") || strstr(err, "selector"));
		assert_int_equal(access(path, F_OK), -1);
	}
}

static void test_keygen_prints_record_name_and_quoted_strings_of_at_most_255(void **state)
{
	char name[256], value[1024];
	const char *hint;

	(void)state;
	parse_record_line(keygen_output, name, sizeof(name), value, sizeof(value));
	assert_string_equal(name, RECORD_NAME);
	/* A 2048-bit key does not fit one character-string, so it really was split. */
	assert_true(strlen(value) > 255);
	assert_memory_equal(value, "v=DKIM1; k=rsa; p=", 18);
	hint = strchr(keygen_output, '\n') + 1;
	assert_memory_equal(hint, "; ", 2);
	assert_non_null(strstr(hint, "\"DKIMSelector\": \"" SELECTOR "\""));
	assert_non_null(strstr(hint, key_path));
	/* One hint line, then nothing. */
	assert_string_equal(strchr(hint, '\n'), "\n");
}

static void test_keygen_record_public_key_matches_private_key(void **state)
{
	const char *p = strstr(key_record, "p=");
	unsigned char der[1024];
	const unsigned char *q = der;
	EVP_PKEY *pub, *priv;
	FILE *f;
	int n;

	(void)state;
	assert_non_null(p);
	p += 2;
	assert_true(strlen(p) < sizeof(der) * 4 / 3);
	n = EVP_DecodeBlock(der, (const unsigned char *)p, (int)strlen(p));
	assert_true(n > 0);
	pub = d2i_PUBKEY(NULL, &q, n);
	assert_non_null(pub);
	f = fopen(key_path, "r");
	assert_non_null(f);
	priv = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(priv);
	assert_int_equal(EVP_PKEY_eq(pub, priv), 1);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
}

/* ---- signing ---- */

/* Signs the sample message and returns just its DKIM-Signature field. */
static void sign_sample_field(struct strbuf *field)
{
	char err[512] = "";

	strbuf_init(field);
	if (sign(sample_header, sample_body, strlen(sample_body), field, err, sizeof(err)) != 0)
		fail_msg("signing failed: %s", err);
}

/* The sample message, signed, with the first from replaced by to (or to appended when from
 * is NULL), checked against the expected verification outcome. */
static void assert_sample_after_edit(const char *from, const char *to, bool still_valid)
{
	struct strbuf message;

	sign_message(sample_header, sample_body, strlen(sample_body), &message);
	if (from)
		replace_in(&message, from, to);
	else
		strbuf_append_str(&message, to);
	if (still_valid)
		assert_verifies(&message);
	else
		assert_does_not_verify(&message);
	strbuf_free(&message);
}

/* The same, inserting a header field above the signed ones as a later hop would. */
static void assert_sample_after_insert(const char *field, bool still_valid)
{
	struct strbuf message;

	sign_message(sample_header, sample_body, strlen(sample_body), &message);
	insert_after_signature(&message, field);
	if (still_valid)
		assert_verifies(&message);
	else
		assert_does_not_verify(&message);
	strbuf_free(&message);
}

/* Signing that must fail with an error containing want and leave the output empty. */
static void assert_sign_refused(const char *header, const char *want)
{
	struct strbuf field;
	char err[512] = "";

	strbuf_init(&field);
	assert_int_equal(sign(header, sample_body, strlen(sample_body), &field, err, sizeof(err)),
		-1);
	if (!strcasestr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	assert_int_equal(field.len, 0);
	strbuf_free(&field);
}

static void test_signature_verifies(void **state)
{
	(void)state;
	assert_sample_after_edit(NULL, "", true);
}

static void test_signature_tags_are_rsa_sha256_relaxed_relaxed(void **state)
{
	static const char *const want[][2] = {
		{"v", "1"}, {"a", "rsa-sha256"}, {"c", "relaxed/relaxed"}, {"d", DOMAIN},
		{"s", SELECTOR},
	};
	struct strbuf field;
	char value[1024];

	(void)state;
	sign_sample_field(&field);
	assert_memory_equal(field.data, "DKIM-Signature: v=1;", 20);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		signature_tag(field.data, want[i][0], value, sizeof(value));
		assert_string_equal(value, want[i][1]);
	}
	/* No l= (RFC 6376 8.2: a body length limit lets anyone append content). */
	assert_null(strstr(field.data, "; l="));
	strbuf_free(&field);
}

static void test_signature_field_is_folded_crlf_lines_of_at_most_78(void **state)
{
	struct strbuf field;
	const char *line, *end;
	int lines = 0;

	(void)state;
	sign_sample_field(&field);
	assert_true(field.len > 2);
	assert_memory_equal(field.data + field.len - 2, "\r\n", 2);
	/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters; 2.2.3: folds are CRLF + WSP. */
	for (line = field.data; *line; line = end + 2) {
		end = strstr(line, "\r\n");
		assert_non_null(end);
		assert_true(end - line <= 78);
		assert_null(memchr(line, '\n', (size_t)(end - line)));
		if (lines++ > 0)
			assert_true(line[0] == ' ' || line[0] == '\t');
	}
	assert_true(lines > 1);
	strbuf_free(&field);
}

static void test_tampered_body_fails_verification(void **state)
{
	(void)state;
	assert_sample_after_edit("at noon", "at one", false);
}

static void test_appended_body_text_fails_verification(void **state)
{
	(void)state;
	assert_sample_after_edit(NULL, "P.S. send money\r\n", false);
}

static void test_tampered_subject_fails_verification(void **state)
{
	(void)state;
	assert_sample_after_edit("Subject: Lunch on Friday?", "Subject: Lunch on Monday?", false);
}

static void test_tampered_from_fails_verification(void **state)
{
	(void)state;
	assert_sample_after_edit("Owner <owner@example.org>", "Owner <boss@example.org>", false);
}

static void test_h_lists_present_fields_and_not_others(void **state)
{
	static const char *const signed_once_or_more[] = {"from", "to", "subject", "date",
		"message-id", "mime-version", "content-type"};
	/* Absent and not oversigned, or never signed (X-Mailer is present but not listed). */
	static const char *const unsigned_names[] = {"in-reply-to", "references",
		"content-transfer-encoding", "x-mailer"};
	struct strbuf field;
	char list[1024];

	(void)state;
	sign_sample_field(&field);
	signed_header_list(field.data, list, sizeof(list));
	for (size_t i = 0; i < sizeof(signed_once_or_more) / sizeof(signed_once_or_more[0]); i++)
		assert_true(count_in_list(list, signed_once_or_more[i]) >= 1);
	for (size_t i = 0; i < sizeof(unsigned_names) / sizeof(unsigned_names[0]); i++)
		assert_int_equal(count_in_list(list, unsigned_names[i]), 0);
	/* Present and not oversigned: exactly once. */
	assert_int_equal(count_in_list(list, "mime-version"), 1);
	assert_int_equal(count_in_list(list, "content-type"), 1);
	/* RFC 6376 5.4.2: oversigned, once for the field present and once more for "no other";
	 * absent but oversigned fields are listed once, signing their absence. */
	assert_int_equal(count_in_list(list, "from"), 2);
	assert_int_equal(count_in_list(list, "subject"), 2);
	assert_int_equal(count_in_list(list, "to"), 2);
	assert_int_equal(count_in_list(list, "cc"), 1);
	assert_int_equal(count_in_list(list, "reply-to"), 1);
	strbuf_free(&field);
}

static void test_all_listed_fields_are_signed_when_present(void **state)
{
	static const char header[] =
		"From: owner@example.org\r\n"
		"To: a@example.net\r\n"
		"Cc: b@example.net\r\n"
		"Subject: Re: all\r\n"
		"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
		"Message-ID: <2@example.org>\r\n"
		"Reply-To: owner@example.org\r\n"
		"In-Reply-To: <1@example.net>\r\n"
		"References: <1@example.net>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n";
	static const char *const names[] = {"from", "to", "cc", "subject", "date", "message-id",
		"reply-to", "in-reply-to", "references", "mime-version", "content-type",
		"content-transfer-encoding"};
	struct strbuf message;
	char list[1024];

	(void)state;
	sign_message(header, sample_body, strlen(sample_body), &message);
	signed_header_list(message.data, list, sizeof(list));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_true(count_in_list(list, names[i]) >= 1);
	assert_verifies(&message);
	strbuf_free(&message);
}

static void test_added_from_subject_or_cc_above_breaks_signature(void **state)
{
	(void)state;
	/* RFC 6376 8.15: readers may show the topmost instance, so oversigning must catch these. */
	assert_sample_after_insert("From: Bank <security@bank.example>\r\n", false);
	assert_sample_after_insert("Subject: Urgent: verify your account\r\n", false);
	assert_sample_after_insert("Cc: someone@example.net\r\n", false);
}

static void test_added_trace_field_keeps_signature_valid(void **state)
{
	(void)state;
	/* Relays add trace fields (RFC 5321 4.4) above ours; they must not break it. */
	assert_sample_after_insert("Received: from mx.example.org by mx.example.net\r\n", true);
}

static void test_folded_headers_and_trailing_empty_body_lines_verify(void **state)
{
	static const char header[] =
		"From: \"A Long Display Name\"\r\n"
		" <owner@example.org>\r\n"
		"To: friend@example.net,\r\n"
		"\tother@example.net\r\n"
		"Subject: a subject that is long enough\r\n"
		"  to be folded  over\r\n"
		"\tthree lines\r\n"
		"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
		"\r\n";
	static const char body[] = "Text with  double  spaces \t \r\nend\r\n\r\n\r\n\r\n";
	struct strbuf message;

	(void)state;
	sign_message(header, body, strlen(body), &message);
	assert_verifies(&message);
	/* RFC 6376 3.4.2 and 3.4.4 (relaxed/relaxed): refolding, whitespace runs, field name
	 * case and trailing empty lines do not matter; the signature survives such rewriting. */
	replace_in(&message, "Subject: a subject that is long enough\r\n  to be folded  over\r\n"
		"\tthree lines",
		"SUBJECT:a subject that is long enough to be folded over three lines");
	replace_in(&message, "double  spaces \t \r\n", "double spaces\r\n");
	replace_in(&message, "end\r\n\r\n\r\n\r\n", "end\r\n");
	assert_verifies(&message);
	strbuf_free(&message);
}

/* Signs sample_header with body; wire_suffix is what SMTP transmission appends. */
static void assert_body_verifies(const char *body, size_t len, const char *wire_suffix)
{
	struct strbuf message;

	sign_message(sample_header, body, len, &message);
	strbuf_append_str(&message, wire_suffix);
	assert_verifies(&message);
	strbuf_free(&message);
}

static void test_empty_body_verifies(void **state)
{
	(void)state;
	assert_body_verifies("", 0, "");
}

static void test_body_without_final_crlf_is_signed_as_sent(void **state)
{
	static const char body[] = "no line end at the end";

	(void)state;
	/* RFC 5321 4.1.1.4: on the wire the body ends with the CRLF before ".". */
	assert_body_verifies(body, strlen(body), "\r\n");
}

static void test_large_body_read_in_many_chunks_verifies(void **state)
{
	struct strbuf body, message;

	(void)state;
	strbuf_init(&body);
	for (int i = 0; i < 20000; i++)
		strbuf_appendf(&body, "line %d of a long message body\r\n", i);
	sign_message(sample_header, body.data, body.len, &message);
	assert_verifies(&message);
	replace_in(&message, "line 19999 of", "line 19998 of");
	assert_does_not_verify(&message);
	strbuf_free(&message);
	strbuf_free(&body);
}

static void test_message_without_from_is_refused(void **state)
{
	(void)state;
	/* RFC 6376 5.4: From MUST be signed, so there is nothing to sign without it. */
	assert_sign_refused("To: friend@example.net\r\nSubject: no sender\r\n\r\n", "from");
}

static void test_header_section_without_empty_line_is_refused(void **state)
{
	(void)state;
	assert_sign_refused("From: owner@example.org\r\nSubject: x\r\n", "empty");
}

static void test_unreadable_body_fd_is_an_error(void **state)
{
	struct strbuf field;
	char err[512] = "";
	int fds[2];

	(void)state;
	/* The write end of a pipe cannot be read. */
	assert_int_equal(pipe(fds), 0);
	strbuf_init(&field);
	assert_int_equal(dkim_signer_sign(signer, sample_header, strlen(sample_header), fds[1],
		&field, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reading the body"));
	assert_int_equal(field.len, 0);
	close(fds[0]);
	close(fds[1]);
	strbuf_free(&field);
}

/* ---- concurrency: worker threads share one signer ---- */

#define SIGNING_THREADS 4
#define SIGNATURES_PER_THREAD 6

struct signing_job {
	int thread;
	struct strbuf messages[SIGNATURES_PER_THREAD];
	int failures;
};

static void *signing_thread(void *arg)
{
	struct signing_job *job = arg;

	for (int i = 0; i < SIGNATURES_PER_THREAD; i++) {
		char header[256], body[128], err[512];
		int fd;

		snprintf(header, sizeof(header), "From: owner@example.org\r\n"
			"To: t%d@example.net\r\nSubject: message %d of thread %d\r\n\r\n",
			job->thread, i, job->thread);
		snprintf(body, sizeof(body), "body %d/%d\r\n", job->thread, i);
		strbuf_init(&job->messages[i]);
		fd = body_file(body, strlen(body));
		if (dkim_signer_sign(signer, header, strlen(header), fd, &job->messages[i], err,
			sizeof(err)) != 0)
			job->failures++;
		close(fd);
		strbuf_append_str(&job->messages[i], header);
		strbuf_append_str(&job->messages[i], body);
	}
	return NULL;
}

static void test_concurrent_signing_on_one_signer_verifies(void **state)
{
	struct signing_job jobs[SIGNING_THREADS];
	pthread_t threads[SIGNING_THREADS];

	(void)state;
	for (int t = 0; t < SIGNING_THREADS; t++) {
		jobs[t].thread = t;
		jobs[t].failures = 0;
		assert_int_equal(pthread_create(&threads[t], NULL, signing_thread, &jobs[t]), 0);
	}
	for (int t = 0; t < SIGNING_THREADS; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);
	for (int t = 0; t < SIGNING_THREADS; t++) {
		assert_int_equal(jobs[t].failures, 0);
		for (int i = 0; i < SIGNATURES_PER_THREAD; i++) {
			assert_verifies(&jobs[t].messages[i]);
			strbuf_free(&jobs[t].messages[i]);
		}
	}
}

/* ---- an independent verifier: python3-dkim ---- */

/* dkim_verify.py next to this file, or where DKIM_VERIFY_PY says (the build may run the test
 * from another directory). */
static const char *verify_script(void)
{
	static char path[512];
	const char *env = getenv("DKIM_VERIFY_PY");
	const char *slash;

	if (env && *env)
		return env;
	slash = strrchr(__FILE__, '/');
	snprintf(path, sizeof(path), "%.*sdkim_verify.py", slash ? (int)(slash - __FILE__ + 1) : 0,
		__FILE__);
	return path;
}

/* Runs dkim_verify.py on the message; returns its exit status (0 pass, 1 fail, 2 no dkimpy). */
static int verify_with_python(const struct strbuf *message)
{
	char msg_path[160];
	int status;
	pid_t pid;
	FILE *f;

	scratch_path(msg_path, sizeof(msg_path), "message.eml");
	f = fopen(msg_path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(message->data, 1, message->len, f), message->len);
	fclose(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/usr/bin/python3", "python3", verify_script(), msg_path, RECORD_NAME,
			key_record, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_python_dkim_verifies_signature(void **state)
{
	static const char body[] = "Grüße,\r\n\r\ntrailing lines follow\r\n\r\n\r\n";
	struct strbuf message;
	int status;

	(void)state;
	/* Both are in scripts/install-deps: missing, they are an install bug, never a skip. */
	if (access("/usr/bin/python3", X_OK) != 0 || access(verify_script(), R_OK) != 0)
		fail_msg("/usr/bin/python3 or %s missing (Debian package python3)", verify_script());
	sign_message(sample_header, body, strlen(body), &message);
	status = verify_with_python(&message);
	if (status == 2) {
		strbuf_free(&message);
		fail_msg("dkim_verify.py could not verify (status 2: is python3-dkim installed?)");
	}
	assert_int_equal(status, 0);
	replace_in(&message, "Lunch on Friday", "Lunch on Monday");
	assert_int_equal(verify_with_python(&message), 1);
	strbuf_free(&message);
}

/* ---- key errors ---- */

static void assert_signer_error(const char *path, const char *want)
{
	char err[512] = "";
	struct dkim_signer *s = dkim_signer_new(DOMAIN, SELECTOR, path, err, sizeof(err));

	if (s) {
		dkim_signer_free(s);
		fail_msg("key %s was accepted", path);
	}
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	assert_non_null(strstr(err, path));
}

/* Writes pkey (encrypted when passphrase is set) as PEM to scratch/name with mode 0600, frees
 * it, and expects dkim_signer_new to refuse the file with an error containing want. */
static void assert_key_refused(const char *name, EVP_PKEY *pkey, const char *passphrase,
	const char *want)
{
	char path[160];
	FILE *f = fopen(scratch_path(path, sizeof(path), name), "w");

	assert_non_null(pkey);
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pkey, passphrase ? EVP_aes_256_cbc() : NULL,
		(const unsigned char *)passphrase, passphrase ? (int)strlen(passphrase) : 0, NULL,
		NULL), 1);
	fclose(f);
	chmod(path, 0600);
	EVP_PKEY_free(pkey);
	assert_signer_error(path, want);
}

/* The same for a file holding text. */
static void assert_text_key_refused(const char *name, const char *text, const char *want)
{
	char path[160];
	FILE *f = fopen(scratch_path(path, sizeof(path), name), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
	assert_signer_error(path, want);
}

static void test_missing_key_file_is_a_clear_error(void **state)
{
	char path[160];

	(void)state;
	assert_signer_error(scratch_path(path, sizeof(path), "absent.pem"),
		"No such file or directory");
}

/* In a child that became nobody (cmocka's assertions cannot be used there): whether the
 * signer refuses path with an error naming it and want. */
static bool refused_as_nobody(const char *path, const char *want)
{
	const struct passwd *pw = getpwnam("nobody");
	char err[512] = "";

	if (!pw || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return false;
	struct dkim_signer *s = dkim_signer_new(DOMAIN, SELECTOR, path, err, sizeof(err));
	if (s) {
		dkim_signer_free(s);
		return false;
	}
	if (!strstr(err, want) || !strstr(err, path))
		fprintf(stderr, "as nobody: error \"%s\" lacks \"%s\"\n", err, want);
	return strstr(err, want) && strstr(err, path);
}

static void test_unreadable_key_file_is_a_clear_error(void **state)
{
	char path[160];
	int status;

	(void)state;
	/* A directory is unreadable as a key for everyone. */
	assert_signer_error(scratch, "not a regular file");
	scratch_path(path, sizeof(path), "mode000.pem");
	assert_int_equal(link(key_path, path), 0);
	assert_int_equal(chmod(path, 0), 0);
	if (geteuid() != 0) {
		assert_signer_error(path, "Permission denied");
	} else {
		/* Root reads mode 000 files anyway: the server would read it as User, so try as
		 * nobody, who may enter the scratch directory but not read the file. */
		assert_int_equal(chmod(scratch, 0711), 0);
		fflush(stdout);
		fflush(stderr);
		pid_t child = fork();
		assert_true(child >= 0);
		if (child == 0)
			_exit(refused_as_nobody(path, "Permission denied") ? 0 : 1);
		assert_int_equal(waitpid(child, &status, 0), child);
		assert_int_equal(chmod(scratch, 0700), 0);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	chmod(path, 0600);
	chmod(key_path, 0600);
}

static void test_non_rsa_key_is_refused(void **state)
{
	(void)state;
	assert_key_refused("ec.pem", EVP_EC_gen("P-256"), NULL, "needs an RSA key");
	/* RFC 8463 ed25519-sha256 is another algorithm; we sign rsa-sha256 only. */
	assert_key_refused("ed25519.pem", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), NULL,
		"needs an RSA key");
}

static void test_short_rsa_key_is_refused(void **state)
{
	(void)state;
	/* RFC 8301 3.2. */
	assert_key_refused("rsa768.pem", EVP_RSA_gen(768), NULL, "at least 1024");
}

static void test_traditional_rsa_pem_key_signs(void **state)
{
	char path[160], err[512] = "", first[64] = "";
	OSSL_ENCODER_CTX *ectx;
	struct dkim_signer *s;
	struct strbuf field;
	EVP_PKEY *pkey;
	FILE *f;
	int fd;

	(void)state;
	/* "BEGIN RSA PRIVATE KEY" (PKCS#1), as older opendkim-genkey made: still accepted. */
	scratch_path(path, sizeof(path), "rsa1024-traditional.pem");
	pkey = EVP_RSA_gen(1024);
	assert_non_null(pkey);
	f = fopen(path, "w");
	assert_non_null(f);
	ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM",
		"type-specific", NULL);
	assert_non_null(ectx);
	assert_int_equal(OSSL_ENCODER_to_fp(ectx, f), 1);
	OSSL_ENCODER_CTX_free(ectx);
	fclose(f);
	chmod(path, 0600);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(first, sizeof(first), f));
	fclose(f);
	assert_string_equal(first, "-----BEGIN RSA PRIVATE KEY-----\n");
	EVP_PKEY_free(pkey);
	s = dkim_signer_new(DOMAIN, SELECTOR, path, err, sizeof(err));
	if (!s)
		fail_msg("%s", err);
	strbuf_init(&field);
	fd = body_file(sample_body, strlen(sample_body));
	assert_int_equal(dkim_signer_sign(s, sample_header, strlen(sample_header), fd, &field, err,
		sizeof(err)), 0);
	close(fd);
	assert_non_null(strstr(field.data, "a=rsa-sha256"));
	strbuf_free(&field);
	dkim_signer_free(s);
}

static void test_encrypted_key_is_refused_without_prompting(void **state)
{
	(void)state;
	assert_key_refused("encrypted.pem", EVP_RSA_gen(1024), "secret", "encrypted");
}

static void test_file_without_private_key_is_refused(void **state)
{
	(void)state;
	assert_text_key_refused("garbage.pem", "this is not a key\n", "no PEM private key");
	/* The public key alone, as someone might paste from the DNS record. */
	assert_text_key_refused("public.pem", "-----BEGIN PUBLIC KEY-----\n", "no PEM private key");
}

static void test_signer_rejects_bad_selector(void **state)
{
	char err[512] = "";

	(void)state;
	assert_null(dkim_signer_new(DOMAIN, "bad selector", key_path, err, sizeof(err)));
	assert_non_null(strstr(err, "selector"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen_writes_key_with_mode_0600),
		cmocka_unit_test(test_keygen_key_is_2048_bit_rsa_pkcs8_pem),
		cmocka_unit_test(test_keygen_refuses_to_overwrite_existing_file),
		cmocka_unit_test(test_keygen_refuses_dangling_symlink),
		cmocka_unit_test(test_keygen_into_missing_directory_fails_cleanly),
		cmocka_unit_test(test_keygen_rejects_bad_domain_or_selector_without_writing),
		cmocka_unit_test(test_keygen_prints_record_name_and_quoted_strings_of_at_most_255),
		cmocka_unit_test(test_keygen_record_public_key_matches_private_key),
		cmocka_unit_test(test_signature_verifies),
		cmocka_unit_test(test_signature_tags_are_rsa_sha256_relaxed_relaxed),
		cmocka_unit_test(test_signature_field_is_folded_crlf_lines_of_at_most_78),
		cmocka_unit_test(test_tampered_body_fails_verification),
		cmocka_unit_test(test_appended_body_text_fails_verification),
		cmocka_unit_test(test_tampered_subject_fails_verification),
		cmocka_unit_test(test_tampered_from_fails_verification),
		cmocka_unit_test(test_h_lists_present_fields_and_not_others),
				cmocka_unit_test(test_all_listed_fields_are_signed_when_present),
		cmocka_unit_test(test_added_from_subject_or_cc_above_breaks_signature),
		cmocka_unit_test(test_added_trace_field_keeps_signature_valid),
		cmocka_unit_test(test_folded_headers_and_trailing_empty_body_lines_verify),
		cmocka_unit_test(test_empty_body_verifies),
		cmocka_unit_test(test_body_without_final_crlf_is_signed_as_sent),
		cmocka_unit_test(test_large_body_read_in_many_chunks_verifies),
		cmocka_unit_test(test_message_without_from_is_refused),
		cmocka_unit_test(test_header_section_without_empty_line_is_refused),
		cmocka_unit_test(test_unreadable_body_fd_is_an_error),
		cmocka_unit_test(test_concurrent_signing_on_one_signer_verifies),
		cmocka_unit_test(test_python_dkim_verifies_signature),
		cmocka_unit_test(test_missing_key_file_is_a_clear_error),
		cmocka_unit_test(test_unreadable_key_file_is_a_clear_error),
		cmocka_unit_test(test_non_rsa_key_is_refused),
		cmocka_unit_test(test_short_rsa_key_is_refused),
		cmocka_unit_test(test_traditional_rsa_pem_key_signs),
		cmocka_unit_test(test_encrypted_key_is_refused_without_prompting),
		cmocka_unit_test(test_file_without_private_key_is_refused),
		cmocka_unit_test(test_signer_rejects_bad_selector),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
